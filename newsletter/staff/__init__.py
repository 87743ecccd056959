"""Staff access: roles, users, sessions, sign-in throttle, TOTP and the audit log (services; no web imports)."""
