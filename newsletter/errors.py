"""Errors a user can act on. Each message names what was wrong and where."""


class InputError(ValueError):
    """Bad input from a user or a source: the message says what and where; nothing was stored."""


class NotFound(LookupError):
    """A requested record does not exist."""
