"""First-party and provider tracking: links, opens, clicks, provider events, bookings and attribution."""
