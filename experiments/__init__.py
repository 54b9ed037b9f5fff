"""neuroloop experiments: loaded by name from simulation configs."""
