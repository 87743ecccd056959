"""Content and sending: posts, rendering, issues, delivery, tracking, reports, CLI and web app."""

__version__ = "0.1.0"
