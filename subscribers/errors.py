"""Errors of the audience package. ``newsletter.errors`` re-uses them so callers catch one family."""


class InputError(ValueError):
    """Bad input from a user or a source: the message says what and where; nothing was stored."""


class NotFound(LookupError):
    """A requested record does not exist."""
