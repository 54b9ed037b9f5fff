"""Training: action distributions, PPO maths, TBPTT chunking, normalizers, gathering, checkpoints.

Submodules are imported explicitly (``from neuroloop.brain.distributions import ...``) so
that importing this package does not import TensorFlow.
"""
