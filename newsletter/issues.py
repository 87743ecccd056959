"""Issues: an email made from a post. Create (compiled once), edit, list, show, preflight, preview and
test emails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from newsletter import health_policy
from newsletter.config import Settings
from newsletter.errors import InputError, NotFound
from newsletter.compose.compile import check_tracking, compile_email, compiled_of, content_for_issue
from newsletter.compose.mime import build_message
from newsletter.compose.personalize import substitute
from newsletter.compose.preflight import CheckResult, Finding, check_email
from newsletter.compose.preflight import checklist as preflight_checklist
from newsletter.compose.render import CompiledEmail
from newsletter.compose.suggestions import suggest
from newsletter.compose.layouts import DIGEST, FULL, check_hero, check_layout
from newsletter.issue_layout import apply_layout, current_posts, digest_posts, hero_choice, reorder
from newsletter.models import EmailVersion, Issue, IssuePost, Link, Post, SequenceStep
from newsletter.posts.service import get_post, update_post
from newsletter.transports.base import issue_categories
from newsletter.urls import TEST_TOKEN, test_values, unsubscribe_mailto
from newsletter.versions import (compile_version, compiled_version, content_for_version, issue_language,
                                 versions_of)
from subscribers.languages import check_language
from subscribers.states import RECOMPILABLE

SAMPLE_RECIPIENT = ("Alex Sample", "alex.sample@example.com")
MAX_INTRO = 2000
TEST_SUBJECT_PREFIX = "[Test] "


def _clean_intro(value: str) -> str:
    """Paragraphs of plain text: lines joined, blank lines kept as paragraph breaks."""
    paragraphs = [" ".join(p.split()) for p in value.replace("\r\n", "\n").split("\n\n")]
    intro = "\n\n".join(p for p in paragraphs if p)
    refuse_control_characters(intro.replace("\n", ""), "intro note")
    if len(intro) > MAX_INTRO:
        raise InputError(f"the intro note is {len(intro)} characters; keep it under {MAX_INTRO}")
    return intro


def _clean_line(value: str, what: str) -> str:
    value = " ".join(value.split())
    refuse_control_characters(value, what)
    if len(value) > 300:
        raise InputError(f"the {what} is {len(value)} characters; keep it under 300")
    return value


def create_issue(
    session: Session, settings: Settings, post_id: int, subject: str | None = None, preheader: str | None = None,
    tracking: str | None = None, intro: str = "", *, layout: str = FULL, more_posts: Sequence[int] = (),
    hero: str | None = None, hero_alt: str | None = None,
) -> Issue:
    """A draft issue from a post (a digest: from ``post_id`` and ``more_posts``, in that order) in
    ``layout``; ``hero`` as staff name it (``hero_choice``). Compiled once; nothing stored on an error.
    The layout is a parameter so that an automation making issues from a feed can choose it too."""
    posts = digest_posts(session, [post_id, *more_posts])
    post = posts[0]
    tracking = check_tracking(tracking or settings.tracking)
    if subject is None or preheader is None:  # not given: the suggestion, free of health words
        suggested = suggest(post, settings)
        subject = suggested.subject if subject is None else subject
        preheader = suggested.preheader if preheader is None else preheader
    subject = _clean_line(subject, "subject")
    preheader = _clean_line(preheader, "preheader")[:200]
    intro = _clean_intro(intro)
    issue = Issue(post=post, subject=subject, preheader=preheader, intro=intro, tracking=tracking)
    apply_layout(session, issue, layout, posts, hero=hero_choice(hero), hero_alt=hero_alt)
    compile_email(content_for_issue(issue), settings, tracking=tracking, session=session, into=issue)
    return issue


def edit_layout(session: Session, settings: Settings, issue: Issue, *, layout: str | None = None,
                hero: str | None = None, hero_alt: str | None = None, post_ids: Sequence[int] | None = None) -> Issue:
    """Change an unsent issue's layout, hero ("first", "none" or an image's src), the hero's alt
    text ("" gives the image's own back) or a digest's posts; None leaves each as it is. It is
    compiled again."""
    _check_editable(issue)
    _check_no_versions_for_digest(session, issue, layout or issue.layout)
    posts = digest_posts(session, post_ids) if post_ids is not None else None
    new_hero = hero_choice(hero) if hero is not None else _kept_hero(issue, (posts or current_posts(issue))[0])
    apply_layout(session, issue, layout or issue.layout, posts, hero=new_hero,
                 hero_alt=hero_alt if hero_alt is not None else issue.hero_alt)
    recompile(session, issue, settings)
    return issue


def edit_digest(session: Session, settings: Settings, issue: Issue, action: str, post_id: int) -> Issue:
    """One change to a digest's posts: "add" ``post_id`` at the end, "remove" it, move it "up" or "down".
    The issue becomes a digest if it was not one."""
    _check_editable(issue)
    _check_no_versions_for_digest(session, issue, DIGEST)
    added = get_post(session, post_id) if action == "add" else None
    posts = reorder(issue, post_id, action, added)
    apply_layout(session, issue, "digest", posts, hero=_kept_hero(issue, posts[0]), hero_alt=issue.hero_alt)
    recompile(session, issue, settings)
    return issue


def _kept_hero(issue: Issue, lead: Post) -> str | None:
    """The issue's hero choice if the lead post still has that image, else the lead's first image."""
    try:
        return check_hero(lead, issue.hero)
    except InputError:
        return None


def _check_no_versions_for_digest(session: Session, issue: Issue, layout: str) -> None:
    """A digest has no language versions (each would need its own translated posts)."""
    if layout == DIGEST and versions_of(session, issue_id=issue.id):
        raise InputError(f"issue {issue.id} has language versions, and a digest has none: remove them first "
                         f"('newsletter issues version {issue.id} --language ... --remove')")


def _check_editable(issue: Issue) -> None:
    if issue.status not in RECOMPILABLE:
        raise InputError(f"issue {issue.id} is {issue.status}: it can be edited only before sending")


def set_tracking(session: Session, settings: Settings, issue: Issue, mode: str) -> None:
    """Change an unsent issue's tracking; its links are compiled again."""
    if issue.status not in RECOMPILABLE:
        raise InputError(f"issue {issue.id} is {issue.status}: tracking can change only before sending")
    issue.tracking = check_tracking(mode)
    recompile(session, issue, settings)


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"there is no issue {issue_id}; 'newsletter issues list' shows them")
    return issue


def list_issues(session: Session, limit: int = 100) -> list[Issue]:
    return list(session.scalars(select(Issue).order_by(Issue.id.desc()).limit(limit)))


def issues_page(session: Session, *, before: int | None = None, limit: int = 50) -> tuple[list[Issue], int | None]:
    """Newest first, ``limit`` issues with ids below ``before`` (keyset: an index range, no OFFSET),
    and the id the next page starts below (None: these are the last)."""
    query = select(Issue).order_by(Issue.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(Issue.id < before)
    rows = list(session.scalars(query))
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def edit_issue(session: Session, settings: Settings, issue: Issue, *, subject: str | None = None,
               preheader: str | None = None, intro: str | None = None) -> Issue:
    """Change an unsent issue's subject, preheader or intro note; it is compiled again. Every value
    is checked before any is stored."""
    if issue.status not in RECOMPILABLE:
        raise InputError(f"issue {issue.id} is {issue.status}: it can be edited only before sending")
    subject = _clean_line(subject, "subject") if subject is not None else issue.subject
    if not subject:
        raise InputError("the subject is empty; every issue needs one")
    preheader = _clean_line(preheader, "preheader")[:200] if preheader is not None else issue.preheader
    intro = _clean_intro(intro) if intro is not None else issue.intro
    issue.subject, issue.preheader, issue.intro = subject, preheader, intro
    recompile(session, issue, settings)
    return issue


def edit_post(session: Session, settings: Settings, post_id: int, *, title: str | None = None,
              excerpt: str | None = None, labels: tuple[str, str] = ("--title", "--excerpt"),
              url: str | None = None) -> list[Issue]:
    """Change a post's title, excerpt or address (``url``: where it is on the clinic's site); its
    issues that have not been sent yet are compiled again, so their previews show what will go out.
    Returns those issues."""
    post = update_post(get_post(session, post_id), title=title, excerpt=excerpt,
                       title_label=labels[0], excerpt_label=labels[1], url=url)
    in_digest = select(IssuePost.issue_id).where(IssuePost.post_id == post.id)
    translated = select(EmailVersion.issue_id).where(EmailVersion.post_id == post.id)
    drafts = list(session.scalars(select(Issue).where(
        or_(Issue.post_id == post.id, Issue.id.in_(in_digest), Issue.id.in_(translated)),
        Issue.status.in_(RECOMPILABLE))))
    for issue in drafts:
        recompile(session, issue, settings)
    return drafts


def recompile(session: Session, issue: Issue, settings: Settings) -> CompiledEmail:
    """Compile again from the post (after a template, brand or tracking change), and each language
    version from its own; only before sending."""
    compiled = compile_email(content_for_issue(issue), settings, tracking=issue.tracking, session=session,
                             into=issue)
    for version in versions_of(session, issue_id=issue.id):
        compile_version(session, settings, version, content_for_version(issue, version), tracking=issue.tracking)
    return compiled


def preflight(issue: Issue, settings: Settings, session: Session | None = None) -> list[Finding]:
    """Check the issue's stored email, byte for byte the one the transport sends, and each of its
    language versions (their findings say which: "[es] ..."), the health-information policy's
    checks among them."""
    session = session or Session.object_session(issue)
    return [finding for prefix, email in _emails(session, issue)
            for finding in _prefixed(prefix, check_email(email, settings) + _policy(session, settings, issue, email))]


def policy_findings(session: Session, settings: Settings, issue: Issue) -> list[Finding]:
    """Only the health-information policy's findings of the issue and its versions (the Send tab, and
    where a send starts): read from the stored parts alone, without loading the posts."""
    emails = [("", CompiledEmail(issue.subject, issue.preheader, issue.html, issue.text)),
              *((f"[{v.language}] ", CompiledEmail(v.subject, v.preheader, v.html, v.text))
                for v in versions_of(session, issue_id=issue.id))]
    return [finding for prefix, email in emails for finding in _prefixed(prefix, _policy(session, settings, issue, email))]


def _emails(session: Session | None, issue: Issue) -> list[tuple[str, CompiledEmail]]:
    """The issue's email and each version's, with the prefix its findings carry."""
    versions = versions_of(session, issue_id=issue.id) if session is not None and issue.id else ()
    return [("", compiled_of(issue)), *((f"[{v.language}] ", compiled_version(issue, v)) for v in versions)]


def _prefixed(prefix: str, findings: list[Finding]) -> list[Finding]:
    return [Finding(f.level, f.code, prefix + f.message) for f in findings] if prefix else findings


def _policy(session: Session | None, settings: Settings, issue: Issue, email: CompiledEmail) -> list[Finding]:
    if session is None or not issue.id:
        return []  # an issue not stored yet has no categories, and the marks cannot be read
    return health_policy.findings_for(session, settings, email, issue_categories(issue.id))


# Language versions ---------------------------------------------------------------------------------


def add_version(session: Session, settings: Settings, issue: Issue, *, language: str, post_id: int,
                subject: str, preheader: str = "") -> EmailVersion:
    """Give an unsent issue a version in ``language``, made from ``post_id`` (the translated post),
    or replace the one it has; compiled once, now. Every value is checked before anything is stored."""
    _check_editable(issue)
    language = check_language(language)
    if issue.layout == DIGEST:
        raise InputError(f"issue {issue.id} is a digest: a digest has no language versions; make a digest "
                         "of the translated posts as an issue of its own")
    if language == issue_language(issue, settings):
        raise InputError(f"issue {issue.id} is itself in {language!r}: a version must be in another language")
    subject = _clean_line(subject, "subject")
    if not subject:
        raise InputError("the subject is empty; every version needs one")
    preheader = _clean_line(preheader, "preheader")[:200]
    post = get_post(session, post_id)
    if post.id == issue.post_id:
        raise InputError(f"post {post.id} is the issue's own post: choose its translation into {language!r}")
    if post.language and post.language != language:
        raise InputError(f"post {post.id} is in {post.language!r}: choose a post in {language!r}")
    # A post chosen as the translation says so from now on (the next issue of it offers it first).
    post.language = post.language or language
    post.translation_of_id = post.translation_of_id or issue.post_id
    version = session.scalar(select(EmailVersion).where(EmailVersion.issue_id == issue.id,
                                                        EmailVersion.language == language))
    if version is None:
        version = EmailVersion(issue_id=issue.id, language=language)
    version.post, version.post_id, version.subject, version.preheader = post, post.id, subject, preheader
    compile_version(session, settings, version, content_for_version(issue, version), tracking=issue.tracking)
    return version


def remove_version(session: Session, issue: Issue, language: str) -> bool:
    """Remove an unsent issue's version in ``language``; False when it had none."""
    _check_editable(issue)
    version = session.scalar(select(EmailVersion).where(EmailVersion.issue_id == issue.id,
                                                        EmailVersion.language == check_language(language)))
    if version is None:
        return False
    session.execute(delete(Link).where(Link.version_id == version.id))  # links name their version by a plain column
    session.delete(version)
    session.flush()
    return True


def version_rows(session: Session, settings: Settings, issue: Issue) -> list[dict[str, object]]:
    """An issue's versions as rows (its own first): language, post, subject, preheader, default."""
    own = {"language": issue_language(issue, settings), "post_id": issue.post_id, "subject": issue.subject,
           "preheader": issue.preheader, "default": True}
    return [own, *({"language": v.language, "post_id": v.post_id, "subject": v.subject, "preheader": v.preheader,
                    "default": False} for v in versions_of(session, issue_id=issue.id))]


def version_field_errors(session: Session, settings: Settings, issue: Issue, *, language: str, post: str,
                         subject: str, preheader: str) -> dict[str, str]:
    """Each of a version form's problems beside its field (``version_language``, ``version_post``,
    ``version_subject``, ``version_preheader``): the checks ``add_version`` makes, one field at a time."""
    errors = {f"version_{name}": message for name, message in field_errors(
        subject=subject, preheader=preheader, intro="").items()}
    try:
        if language == issue_language(issue, settings):
            errors["version_language"] = f"The issue itself is in {language}; choose another language."
        else:
            check_language(language)
    except InputError as exc:
        errors["version_language"] = sentence(str(exc)) if language else "Choose the version's language."
    number = int(post) if post.isascii() and post.isdigit() and len(post) <= 12 else None
    if number is None:
        errors["version_post"] = "Choose the translated post the version is made from."
    elif (post_row := session.get(Post, number)) is None:
        errors["version_post"] = f"There is no post {number}; choose one from the list."
    elif post_row.id == issue.post_id:
        errors["version_post"] = "That is the issue's own post; choose its translation."
    elif post_row.language and language and post_row.language != language:
        errors["version_post"] = f"Post {number} is in {post_row.language}; choose a post in {language}."
    return errors


def get_version(session: Session, issue: Issue, language: str) -> EmailVersion:
    version = session.scalar(select(EmailVersion).where(EmailVersion.issue_id == issue.id,
                                                        EmailVersion.language == check_language(language)))
    if version is None:
        raise NotFound(f"issue {issue.id} has no version in {language!r}; "
                       f"'newsletter issues version {issue.id} --language ...' adds one")
    return version


@dataclass
class PreviewFiles:
    html: Path
    text: Path
    eml: Path


def write_preview(issue: Issue, settings: Settings, out_dir: Path, version: EmailVersion | None = None) -> PreviewFiles:
    """issue.html, issue.txt and issue.eml exactly as a sample recipient would receive them (of a
    language ``version`` when given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name, address = SAMPLE_RECIPIENT
    preview = preview_parts(version or issue, settings)
    message = build_message(
        compiled_version(issue, version) if version else compiled_of(issue),
        to_email=address,
        to_name=name,
        values=test_values(settings, name),
        unsubscribe_mailto=unsubscribe_mailto(settings, TEST_TOKEN),
        settings=settings,
    )
    files = PreviewFiles(out_dir / "issue.html", out_dir / "issue.txt", out_dir / "issue.eml")
    files.html.write_text(preview.html, encoding="utf-8")
    files.text.write_text(preview.text, encoding="utf-8")
    files.eml.write_bytes(message.as_bytes())
    return files


@dataclass(frozen=True)
class Preview:
    html: str
    text: str


def preview_parts(email: Issue | SequenceStep | EmailVersion, settings: Settings) -> Preview:
    """A stored email's (an issue's or a sequence step's) HTML and text as a sample recipient gets
    them; its links work and count nothing."""
    values = test_values(settings, SAMPLE_RECIPIENT[0])
    return Preview(substitute(email.html, values), substitute(email.text, values))


# For the staff pages: what may change, each field's problem, the checklist ---------------------------

TRACKING_LABELS = {
    "full": "Full: opens and clicks per reader",
    "anonymous": "Anonymous: totals only, no one's own opens or clicks",
    "off": "Off: no open pixel, links go straight to their site",
}


def editable(issue: Issue) -> bool:
    """Whether the subject, preheader and intro note may still change (nothing queued yet)."""
    return issue.status in RECOMPILABLE


def field_errors(*, subject: str | None, preheader: str | None, intro: str,
                 tracking: str | None = None, layout: str | None = None) -> dict[str, str]:
    """Each value's problem, by field name, as a sentence (empty when all may be stored): the same
    checks ``create_issue`` and ``edit_issue`` make, one field at a time, so a form can show each
    error beside its own field. None: not given (a new issue takes the suggestion: ``compose.suggestions``)."""
    checks: dict[str, Callable[[], object]] = {"intro": lambda: _clean_intro(intro)}
    if subject is not None:
        checks["subject"] = lambda: _clean_line(subject, "subject") or _raise("the subject is empty; every issue needs one")
    if preheader is not None:
        checks["preheader"] = lambda: _clean_line(preheader, "preheader")
    if tracking is not None:
        checks["tracking"] = lambda: check_tracking(tracking)
    if layout is not None:
        checks["layout"] = lambda: check_layout(layout)
    errors = {}
    for name, check in checks.items():
        try:
            check()
        except InputError as exc:
            errors[name] = sentence(str(exc))
    return errors


def _raise(message: str) -> str:
    raise InputError(message)


def sentence(message: str) -> str:
    """A service's message ("the subject is empty; …") as a sentence shown beside a field."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def checklist(issue: Issue, settings: Settings) -> list[CheckResult]:
    """The preflight as a checklist: every check with its result, passing ones too."""
    return preflight_checklist(preflight(issue, settings))


def refuse_control_characters(value: str, what: str) -> None:
    # A NUL or another control character is never meant, and PostgreSQL refuses NUL in text.
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InputError(f"the {what} holds a control character; give plain text")
