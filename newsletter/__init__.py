"""Content and sending: posts, rendering, issues, delivery, tracking, reports, CLI and web app."""

__version__ = "0.1.0"

# A booking is attributed and ends nurture sequences at once, whichever face recorded it (CLI, web
# hook, scheduler): the listeners are registered when the package is first imported.
from subscribers.leads import on_booking as _on_booking  # noqa: E402

from newsletter.sequences.engine import end_on_booking as _end_on_booking  # noqa: E402
from newsletter.tracking.attribution import attribute as _attribute  # noqa: E402

_on_booking(_attribute)
_on_booking(_end_on_booking)
