"""nightshift: coding-agent CLIs run headless as background workers, orchestrated by Prefect 3."""

__version__ = "0.1.0"
