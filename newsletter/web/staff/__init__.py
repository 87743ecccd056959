"""The staff app: pages under /staff (routes only; the rules live in newsletter.staff and the other services)."""
