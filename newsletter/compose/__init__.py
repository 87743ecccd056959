"""Compose: blocks become the stored email. ``compile.compile_email`` is the step's one entry: it
renders (``render``: Jinja2 via ``templating``, MJML, the text part via ``plaintext``), rewrites links
for tracking (``tracked_links``) and stores the result; ``personalize`` holds the per-recipient
placeholders, ``mime`` builds a recipient's whole message, and ``preflight`` checks the compiled email
as it is sent."""
