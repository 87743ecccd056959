"""Errors a user can act on. Each message names what was wrong and where.

They are defined in ``subscribers.errors`` (the lower package) so both packages raise the same types.
"""

from subscribers.errors import InputError, NotFound

__all__ = ["InputError", "NotFound"]
