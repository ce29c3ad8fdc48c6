"""Provider responses mapped into one normalized ``Usage``."""

from thrifty.usage.model import Usage

__all__ = ["Usage"]
