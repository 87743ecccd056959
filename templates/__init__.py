"""Email (Jinja2 -> MJML) and web page templates, shipped inside the package as newsletter.templates."""
