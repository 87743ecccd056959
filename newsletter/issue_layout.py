"""An issue's layout, hero image and (for a digest) its posts in order: checked and applied to the
issue. ``newsletter.issues`` compiles the issue again afterwards; nothing here compiles.

A digest's posts are rows of ``issue_posts`` (position 0 is the lead post, always the issue's
``post_id``, so everything that reads an issue's post keeps working); other layouts have none.
Issue creation takes the layout as a parameter, so an automation (feeds, issue 18) can pass it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter.compose.layouts import (DIGEST, LAYOUT_LABELS, LAYOUTS, MAX_DIGEST_POSTS, MAX_HERO_ALT, NO_HERO,
                                        check_hero, check_layout, images_of)
from newsletter.errors import InputError
from newsletter.models import Issue, IssuePost, Post
from newsletter.posts.service import get_post

FIRST_IMAGE = "first"  # how the CLI and forms name the default hero (the post's first image)


def hero_choice(value: str | None) -> str | None:
    """A hero as staff type it: "first" (or empty) for the post's first image, "none", or an image's src."""
    value = (value or "").strip()
    return None if value in ("", FIRST_IMAGE) else value


def check_hero_alt(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InputError("the hero's alt text holds a control character; give plain text")
    if len(value) > MAX_HERO_ALT:
        raise InputError(f"the hero's alt text is {len(value)} characters; keep it under {MAX_HERO_ALT}")
    return value or None


def digest_posts(session: Session, post_ids: Sequence[int]) -> list[Post]:
    """The posts of a digest, checked: each exists, none twice, not too many."""
    if len(set(post_ids)) != len(post_ids):
        twice = next(p for p in post_ids if list(post_ids).count(p) > 1)
        raise InputError(f"post {twice} is in the digest twice; each post appears once")
    if len(post_ids) > MAX_DIGEST_POSTS:
        raise InputError(f"a digest holds at most {MAX_DIGEST_POSTS} posts, not {len(post_ids)}")
    return [get_post(session, post_id) for post_id in post_ids]


def apply_layout(session: Session, issue: Issue, layout: str, posts: Sequence[Post] | None = None, *,
                 hero: str | None = None, hero_alt: str | None = None) -> None:
    """Give ``issue`` its layout, its posts (a digest's in order; else the one post) and its hero.
    Everything is checked before anything changes. ``posts`` None keeps the issue's posts (a digest
    becoming a full or teaser issue keeps its first post only)."""
    check_layout(layout)
    chosen = list(posts) if posts is not None else current_posts(issue)[:None if layout == DIGEST else 1]
    if not chosen:
        raise InputError("an issue needs a post")
    if layout != DIGEST and len(chosen) > 1:
        raise InputError(f"only a digest shows several posts; the {layout} layout takes one")
    hero = check_hero(chosen[0], hero)
    hero_alt = check_hero_alt(hero_alt)
    issue.layout, issue.hero, issue.hero_alt = layout, hero, hero_alt
    issue.post = chosen[0]
    _store_entries(session, issue, chosen if layout == DIGEST else [])


def current_posts(issue: Issue) -> list[Post]:
    if issue.digest_entries:
        return [entry.post for entry in issue.digest_entries]
    return [issue.post] if issue.post is not None else []


def _store_entries(session: Session, issue: Issue, posts: Sequence[Post]) -> None:
    """Replace the digest's rows: the old ones are deleted (flushed) before the new positions go in,
    so the (issue, position) and (issue, post) keys never clash midway."""
    if [e.post_id for e in issue.digest_entries] == [p.id for p in posts]:
        return
    issue.digest_entries.clear()
    if issue.id is not None:
        session.flush()
    issue.digest_entries.extend(IssuePost(position=n, post=post) for n, post in enumerate(posts))


def reorder(issue: Issue, post_id: int, action: str, add: Post | None = None) -> list[Post]:
    """A digest's posts after one change by staff: ``add`` (a post, at the end), ``remove``, ``up`` or
    ``down`` (``post_id``'s place). The new list is returned for ``apply_layout``, not stored."""
    posts = current_posts(issue)
    ids = [p.id for p in posts]
    if action == "add":
        if add is None:
            raise InputError("choose the post to add")
        if add.id in ids:
            raise InputError(f"post {add.id} is in the digest already")
        return [*posts, add]
    if post_id not in ids:
        raise InputError(f"post {post_id} is not in this digest")
    n = ids.index(post_id)
    if action == "remove":
        if len(posts) == 1:
            raise InputError("a digest keeps at least one post; add another before removing this one")
        return posts[:n] + posts[n + 1:]
    if action in ("up", "down"):
        m = n - 1 if action == "up" else n + 1
        if not 0 <= m < len(posts):
            return posts
        posts[n], posts[m] = posts[m], posts[n]
        return posts
    raise InputError(f"unknown change {action!r} to a digest's posts")


# For the staff pages: the choices the layout form offers, and each field's problem ------------------


@dataclass(frozen=True)
class LayoutChoices:
    layouts: list[tuple[str, str]]
    heroes: list[tuple[str, str]]  # (value, label): the first image, each image, none
    posts: list[Post]  # the digest's posts in order (the issue's one post otherwise)
    addable: list[tuple[str, str]]  # recent posts not in the digest yet


def layout_choices(issue: Issue, recent: Sequence[Post]) -> LayoutChoices:
    images = images_of(issue.post)
    heroes = [(FIRST_IMAGE, "The post's first image" if images else "The post's first image (it has none)")]
    heroes += [(image["src"], f"Image {n}: {image['alt'] or 'no alt text'}") for n, image in enumerate(images, 1)]
    heroes.append((NO_HERO, "No hero image"))
    posts = current_posts(issue)
    ids = {p.id for p in posts}
    addable = [("", "Choose a post")] + [(str(p.id), f"{p.title} (post {p.id})") for p in recent if p.id not in ids]
    return LayoutChoices([(name, LAYOUT_LABELS[name]) for name in LAYOUTS], heroes, posts, addable)


def layout_field_errors(issue: Issue, *, layout: str, hero: str, hero_alt: str) -> dict[str, str]:
    """Each layout field's problem, by field name, in the words a form shows beside it."""
    errors: dict[str, str] = {}
    for name, check in (("layout", lambda: check_layout(layout)),
                        ("hero", lambda: check_hero(issue.post, hero_choice(hero))),
                        ("hero_alt", lambda: check_hero_alt(hero_alt))):
        try:
            check()
        except InputError as exc:
            message = str(exc)
            errors[name] = message[:1].upper() + message[1:].rstrip(".") + "."
    return errors


__all__ = ["FIRST_IMAGE", "NO_HERO", "LayoutChoices", "apply_layout", "check_hero_alt", "current_posts",
           "digest_posts", "hero_choice", "layout_choices", "layout_field_errors", "reorder"]
