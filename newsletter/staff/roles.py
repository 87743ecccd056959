"""Who may open what: each staff role and the areas of the staff app it may use (the one home of that rule)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"          # users, settings, the audit log, and everything else
    MARKETING = "marketing"  # posts, issues, sequences, contacts and segments, reports
    CLINIC = "clinic"        # leads, bookings and follow-up: contact details of leads only


class Area(StrEnum):
    HOME = "home"
    POSTS = "posts"
    ISSUES = "issues"
    CONTACTS = "contacts"
    SEQUENCES = "sequences"
    REPORTS = "reports"
    LEADS = "leads"
    AUDIT = "audit"
    USERS = "users"
    SETTINGS = "settings"


AREA_ROLES: dict[Area, frozenset[Role]] = {
    Area.HOME: frozenset(Role),
    Area.POSTS: frozenset({Role.ADMIN, Role.MARKETING}),
    Area.ISSUES: frozenset({Role.ADMIN, Role.MARKETING}),
    Area.CONTACTS: frozenset({Role.ADMIN, Role.MARKETING}),
    Area.SEQUENCES: frozenset({Role.ADMIN, Role.MARKETING}),
    Area.REPORTS: frozenset({Role.ADMIN, Role.MARKETING}),
    Area.LEADS: frozenset({Role.ADMIN, Role.CLINIC}),
    Area.AUDIT: frozenset({Role.ADMIN}),
    Area.USERS: frozenset({Role.ADMIN}),
    Area.SETTINGS: frozenset({Role.ADMIN}),
}


def may(role: Role | str, area: Area) -> bool:
    """Whether a user of ``role`` may open ``area`` (an unknown role may open nothing)."""
    try:
        return Role(role) in AREA_ROLES[area]
    except ValueError:
        return False


def areas_for(role: Role | str) -> list[Area]:
    """The areas ``role`` may open, in the order of ``Area``."""
    return [area for area in Area if may(role, area)]


def parse_role(value: str) -> Role:
    """A role typed by a person; ValueError names the ones there are."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise ValueError(f"role {value!r} does not exist: use one of {', '.join(Role)}") from None
