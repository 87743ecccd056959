"""The ASGI app: public pages (sign-up, confirm, preferences, unsubscribe)."""
