"""NRP-core datapack types."""
