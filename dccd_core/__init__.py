"""dccd core library."""

from .operations import inventory, read

__all__ = ["inventory", "read"]
