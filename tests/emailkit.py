"""Sample content the email tests share, written for the tests (not copied from any real post)."""

from __future__ import annotations

from datetime import datetime, timezone

from newsletter.compose.render import EmailContent

BLOCKS = [
    {"type": "paragraph", "html": "Morning light helps set the body clock.<sup>1</sup> Try it for a week."},
    {"type": "heading", "level": 2, "html": "Start with light"},
    {
        "type": "paragraph",
        "html": 'Read the <a href="https://example.org/guide">full guide</a> &amp; share it with a friend.',
    },
    {"type": "quote", "html": "“Every minute of movement counts.”<sup>2</sup>"},
    {"type": "list", "ordered": True, "items": ["Get up at the same time", "Eat before noon"]},
    {"type": "list", "ordered": False, "items": ["Walk", "Stretch"]},
    {"type": "image", "src": "https://example.org/walk.jpg", "alt": "A path through a park", "caption": "A calm walk"},
    {"type": "heading", "level": 3, "html": "Keep it simple"},
    {"type": "paragraph", "html": "Small, steady steps beat big plans."},
    {"type": "references", "items": ["Walker, M. “Why We Sleep.” 2017", "WHO. “Guidelines on Physical Activity.” 2020"]},
]


def content(**overrides: object) -> EmailContent:
    values: dict = dict(
        subject="Small steps for steadier days",
        preheader="A few easy habits to start this week, and why they help.",
        title="Small Steps for Steadier Days",
        blocks=[dict(b) for b in BLOCKS],
        published_at=datetime(2026, 11, 3, tzinfo=timezone.utc),
        reading_minutes=3,
    )
    values.update(overrides)
    return EmailContent(**values)
