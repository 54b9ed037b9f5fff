"""neuroloop: close the loop between a simulated body and a neural-network brain."""

__version__ = "0.1.0"
