"""Content and sending: posts, rendering, issues, delivery, tracking, reports, CLI and web app.

Importing the package registers nothing: listeners are wired where a process starts
(``newsletter.bootstrap.wire``)."""

__version__ = "0.1.0"
