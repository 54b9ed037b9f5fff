"""Learned twins of bodies: collect a body's responses, fit a GRU surrogate to them
(ArmNet), and train a controller through the frozen surrogate (ControllerNet).

The body is whatever engine a simulation config names (the arm26 MuJoCo arm, for one);
which datapacks form its state vector, and what the controller's task is, come from a
surrogate config (``neuroloop/schemas/surrogate.schema.json``), never from imports.
"""
