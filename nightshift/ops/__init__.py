"""Server and worker process management for `nightshift up`, `down` and `status` (see `stack`)."""

from nightshift.ops.stack import Stack, UpOptions, down, up
from nightshift.ops.status import status

__all__ = ["Stack", "UpOptions", "down", "status", "up"]
