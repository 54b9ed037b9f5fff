"""neuroloop engines: loaded by name from simulation configs."""
