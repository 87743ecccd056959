"""Outgoing webhooks: events about leads, bookings and contacts, signed and POSTed to the clinic's CRM.

``events`` derives events from the tables that already record what happened (one home for the rule,
whichever face caused it); ``endpoints`` is what admins do (CLI and staff app); ``sender`` delivers
them in the dispatcher processes; ``signing`` is the signature a receiver checks.
"""
