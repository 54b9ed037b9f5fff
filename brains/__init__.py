"""neuroloop brains: loaded by name from simulation configs."""
