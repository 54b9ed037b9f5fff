"""NRP-core Python engine script bases."""
