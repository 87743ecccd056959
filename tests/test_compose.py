"""One way to compile an email (``newsletter.compose.compile.compile_email``), and preflight measuring
exactly what is sent: the tracked HTML with every link carrying a real delivery token."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsletter import issues as issue_service
from newsletter.compose.compile import compile_email, compiled_of, content_for_post
from newsletter.compose.mime import build_message
from newsletter.compose.preflight import check_email, sent_html_bytes
from newsletter.compose.render import EmailContent, render_email
from newsletter.config import Settings
from newsletter.database import Database
from newsletter.models import Link, Post, SequenceStep
from newsletter.posts.blocks import Block, ParsedPost
from newsletter.posts.service import store_post
from newsletter.sequences.definition import step_content
from newsletter.sequences.install import install, reason_for
from newsletter.sequences.library import shipped_definitions
from newsletter.urls import MAX_LEDGER_ID, DeliveryLinks

LINKS = 200
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def link_heavy_post(db: Database) -> int:
    paragraphs = [Block("paragraph", html=" ".join(
        f'<a href="https://example.org/guide/{p}/{n}">part {n} of guide {p}</a>' for n in range(10)))
        for p in range(LINKS // 10)]
    with db.session() as s:
        return store_post(s, ParsedPost(title="Two hundred places to read", blocks=paragraphs)).post.id


def html_part(message) -> bytes:  # noqa: ANN001 - EmailMessage
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/html"]
    return part.get_payload(decode=True)


def test_preflight_measures_the_tracked_html_the_transport_sends(db: Database, settings: Settings) -> None:
    post_id = link_heavy_post(db)
    with db.session() as s:
        issue = issue_service.create_issue(s, settings, post_id, "Reading list", "Where to start", tracking="full")
        # and the booking button, as a button after the post and as a text link near the top
        assert s.query(Link).filter(Link.issue_id == issue.id).count() == LINKS + 2
        stored = compiled_of(issue)
        untracked = render_email(content_for_post(issue.post, issue.subject, issue.preheader), settings)
        # What a recipient with the longest possible delivery id gets, as the transports build it.
        values, mailto = DeliveryLinks(settings).values(MAX_LEDGER_ID, "Alexandra")
        message = build_message(stored, to_email="alexandra@example.org", to_name="Alexandra", values=values,
                                unsubscribe_mailto=mailto, settings=settings)
    sent = html_part(message).removesuffix(b"\n")  # the line end MIME's encoding adds (SendGrid's request has none)
    assert sent_html_bytes(stored, settings) == len(sent)  # byte for byte what is sent
    assert sent.count(b"/c/" + values.track.encode()) == LINKS + 2  # every link carries the delivery's token
    # The old measure (re-rendered, untracked, a 22-character stand-in token) was far smaller.
    assert len(sent) - untracked.html_bytes > LINKS * len(values.track)
    print(f"\nsent HTML {len(sent):,} bytes; untracked render {untracked.html_bytes:,} bytes")


def test_the_gmail_clipping_check_counts_the_tracked_links(db: Database, settings: Settings) -> None:
    post_id = link_heavy_post(db)
    with db.session() as s:
        issue = issue_service.create_issue(s, settings, post_id, "Reading list", "Where to start", tracking="full")
        stored = compiled_of(issue)
        untracked = render_email(content_for_post(issue.post, issue.subject, issue.preheader), settings)
    # A Gmail limit between the two sizes: the untracked render would pass, the email sent does not.
    import newsletter.compose.preflight as preflight

    limit = (untracked.html_bytes + sent_html_bytes(stored, settings)) // 2
    original = preflight.GMAIL_CLIP_BYTES
    preflight.GMAIL_CLIP_BYTES = limit
    try:
        assert "html-too-large" not in {f.code for f in check_email(untracked, settings)}
        assert "html-too-large" in {f.code for f in check_email(stored, settings)}
    finally:
        preflight.GMAIL_CLIP_BYTES = original


def test_issues_and_sequence_steps_are_compiled_the_same_one_way(db: Database, settings: Settings) -> None:
    """Every shipped sequence installs through compile_email: each step stores what compiling its
    step_content gives, tracked as its sequence says."""
    with db.session() as s:
        for definition in shipped_definitions():
            sequence = install(s, settings, definition, now=NOW).sequence
            rows = {row.key: row for row in s.query(SequenceStep).filter(SequenceStep.sequence_id == sequence.id)}
            for position, step in enumerate(definition.steps, start=1):
                post = s.get(Post, step.post) if step.post is not None else None
                content = step_content(step, post=post, source="test", reason=reason_for(sequence, settings))
                row = rows[step.key or f"step-{position}"]
                assert row.text == render_email(content, settings).text
                assert (row.html == render_email(content, settings).html) == (sequence.tracking == "off")


def test_a_tracked_email_needs_the_row_its_links_belong_to(settings: Settings) -> None:
    content = EmailContent(subject="Hello", preheader="", title="Hello",
                           blocks=[{"type": "paragraph", "html": "Hi"}])
    assert compile_email(content, settings).html.startswith("<!doctype html>")
    with pytest.raises(ValueError, match="issue or a step"):
        compile_email(content, settings, tracking="full")
