"""The audience: contacts, lists, consent, preferences, suppression, segments, leads and bookings.

This package never imports ``newsletter``: it owns the shared database base (``subscribers.db``) and
is handed settings values by its callers.
"""
