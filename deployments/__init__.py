"""nightshift deployments."""
