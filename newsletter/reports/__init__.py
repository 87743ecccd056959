"""Reports for staff: how each email did, the lead funnel, and the warm leads to call.

- ``email_stats``: an issue, or each step of a sequence (recipients, sent, delivered, bounces, human
  and machine opens apart, clicks, CTR and CTOR, unsubscribes, complaints, top links, bookings).
- ``funnel``: leads -> emailed -> engaged -> booked -> attended, by source and by sequence, with the
  bookings attributed to each issue and step.
- ``follow_up``: leads who opened or clicked an email lately and have not booked, with why.
- ``output``: the one rendering of all of them as a table, JSON or CSV.

Each module's docstring defines its figures. Reports only read: ``events`` (SendGrid's webhook and
our own open/click endpoints), ``attributions`` (written at booking time) and the ledger.
"""
