"""Training: action distributions, PPO maths, TBPTT chunking, normalizers, gathering, checkpoints.

Submodules are imported explicitly (``from neuroloop.training.distributions import ...``) so
that importing this package does not import TensorFlow.
"""
