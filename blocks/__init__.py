"""nightshift blocks."""
