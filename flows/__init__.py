"""nightshift flows."""
