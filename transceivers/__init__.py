"""neuroloop transceivers: loaded by name from simulation configs."""
