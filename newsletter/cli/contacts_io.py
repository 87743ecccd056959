"""newsletter contacts import / export: CSV files in and out."""

from __future__ import annotations

from newsletter.cli.contacts import contacts_app  # noqa: F401 - commands register on it
