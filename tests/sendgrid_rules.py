"""The Mail Send limits SendGrid documents, checked by the project's own code.

The fake SendGrid server (``tests/sendgrid_fake.py``) refuses a body that breaks any of these with a
400 in SendGrid's error shape, whether or not SendGrid's own OpenAPI description is at hand: the
description is third-party text and is never part of the repository, so a plain clone of it tests
against these rules alone, and CI (which sets ``NEWSLETTER_TEST_SENDGRID_OPENAPI``) against both.

Each rule is a documented limit of ``POST /v3/mail/send``; several are not in the description's
schema at all (the 1000-recipient total, the subject, the 10,000-byte custom arguments, the reserved
headers, the order of content types).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000  # to + cc + bcc, over all personalizations of one request
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_CUSTOM_ARGS_BYTES = 10_000  # all custom_args of one message, as JSON
MAX_SUBSTITUTION_BYTES = 10_000  # all substitutions of one personalization
MAX_SEND_AT_AHEAD_SECONDS = 72 * 3600
MAX_REPLY_TO_LIST = 1000
MAX_GROUPS_TO_DISPLAY = 25
# Headers SendGrid sets itself and refuses from a caller (compared case-insensitively).
RESERVED_HEADERS = frozenset({
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding",
    "to", "from", "subject", "reply-to", "cc", "bcc",
})
_ADDRESS = re.compile(r"^[^@\s\"<>,;]+@[^@\s\"<>,;]+\.[^@\s\"<>,;]+$")


def _error(field: str | None, message: str) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def _address_errors(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return [_error(field, "Invalid type. Expected: object with an email.")]
    email = value.get("email")
    if not isinstance(email, str) or not _ADDRESS.match(email):
        return [_error(f"{field}.email", "Does not contain a valid address.")]
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        return [_error(f"{field}.name", "Invalid type. Expected: string.")]
    return []


def _string_map_errors(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [_error(field, "Invalid type. Expected: object.")]
    return [
        _error(f"{field}.{name}", f"Invalid type. Expected: string, given: {type(item).__name__}.")
        for name, item in value.items() if not isinstance(item, str)
    ]


def _header_errors(headers: Any, field: str) -> list[dict[str, Any]]:
    errors = _string_map_errors(headers, field)
    for name in headers or {}:
        if isinstance(headers, dict) and name.lower() in RESERVED_HEADERS:
            errors.append(_error(f"{field}.{name}", f"The header {name} is reserved and cannot be set."))
    return errors


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _personalization_errors(p: Any, i: int, has_subject: bool) -> list[dict[str, Any]]:
    field = f"personalizations.{i}"
    if not isinstance(p, dict):
        return [_error(field, "Invalid type. Expected: object.")]
    errors: list[dict[str, Any]] = []
    to = p.get("to")
    if not isinstance(to, list) or not to:
        errors.append(_error(f"{field}.to", "The to array is required for all personalization objects, "
                                            "and must have at least one email object with a valid email address."))
    seen: set[str] = set()
    for kind in ("to", "cc", "bcc"):
        people = p.get(kind) or []
        if not isinstance(people, list):
            errors.append(_error(f"{field}.{kind}", "Invalid type. Expected: array."))
            continue
        for j, person in enumerate(people):
            found = _address_errors(person, f"{field}.{kind}.{j}")
            errors += found
            if not found:
                email = person["email"].lower()
                if email in seen:
                    errors.append(_error(f"{field}.{kind}.{j}.email", "Each email address in the personalization "
                                                                     "block should be unique between to, cc, and bcc."))
                seen.add(email)
    subject = p.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject):
        errors.append(_error(f"{field}.subject", "The subject must be a non-empty string."))
    elif subject is None and not has_subject:
        errors.append(_error(f"{field}.subject", "The subject is required. You can get around this requirement "
                                                 "if you use a template with a subject defined or if every "
                                                 "personalization has a subject defined."))
    substitutions = p.get("substitutions")
    errors += _string_map_errors(substitutions, f"{field}.substitutions")
    if isinstance(substitutions, dict) and _size(substitutions) > MAX_SUBSTITUTION_BYTES:
        errors.append(_error(f"{field}.substitutions", f"The substitutions of one personalization may not "
                                                       f"exceed {MAX_SUBSTITUTION_BYTES} bytes."))
    errors += _header_errors(p.get("headers"), f"{field}.headers")
    errors += _string_map_errors(p.get("custom_args"), f"{field}.custom_args")
    errors += _send_at_errors(p.get("send_at"), f"{field}.send_at")
    return errors


def _send_at_errors(send_at: Any, field: str) -> list[dict[str, Any]]:
    if send_at is None:
        return []
    if not isinstance(send_at, int) or isinstance(send_at, bool):
        return [_error(field, "Invalid type. Expected: integer (a unix timestamp).")]
    if send_at > time.time() + MAX_SEND_AT_AHEAD_SECONDS:
        return [_error(field, "A send cannot be scheduled more than 72 hours in advance.")]
    return []


def mail_send_errors(body: Any) -> list[dict[str, Any]]:
    """Every documented limit ``body`` breaks, as SendGrid reports errors (empty when it is fine)."""
    if not isinstance(body, dict):
        return [_error(None, "The request body must be a JSON object.")]
    errors: list[dict[str, Any]] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(_error("personalizations", "The personalizations field is required and must have at least "
                                                 "one personalization."))
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(_error("personalizations", f"You may not have more than {MAX_PERSONALIZATIONS} "
                                                 "personalizations per API request."))
    subject = body.get("subject")
    if subject is not None and (not isinstance(subject, str) or not subject):
        errors.append(_error("subject", "The subject must be a non-empty string."))
    recipients = sum(len(p.get(kind) or []) for p in personalizations if isinstance(p, dict)
                     for kind in ("to", "cc", "bcc") if isinstance(p.get(kind), list))
    if recipients > MAX_RECIPIENTS:
        errors.append(_error("personalizations", f"The total number of recipients (to, cc and bcc) may not "
                                                 f"exceed {MAX_RECIPIENTS} per request; this one has {recipients}."))
    errors += _address_errors(body.get("from"), "from") if "from" in body else [
        _error("from", "The from object must be provided for every email send.")]
    if "reply_to" in body and "reply_to_list" in body:
        errors.append(_error("reply_to_list", "reply_to and reply_to_list cannot be used together."))
    if body.get("reply_to") is not None:
        errors += _address_errors(body["reply_to"], "reply_to")
    reply_to_list = body.get("reply_to_list")
    if isinstance(reply_to_list, list) and len(reply_to_list) > MAX_REPLY_TO_LIST:
        errors.append(_error("reply_to_list", f"At most {MAX_REPLY_TO_LIST} reply-to addresses."))
    errors += _content_errors(body)
    errors += _category_errors(body.get("categories"))
    errors += _header_errors(body.get("headers"), "headers")
    custom_args = body.get("custom_args")
    errors += _string_map_errors(custom_args, "custom_args")
    message_args = [custom_args or {}] + [p.get("custom_args") or {} for p in personalizations if isinstance(p, dict)]
    if any(_size({**(custom_args or {}), **args}) > MAX_CUSTOM_ARGS_BYTES for args in message_args
           if isinstance(args, dict) and isinstance(custom_args or {}, dict)):
        errors.append(_error("custom_args", f"The custom arguments of one message may not exceed "
                                            f"{MAX_CUSTOM_ARGS_BYTES} bytes."))
    errors += _send_at_errors(body.get("send_at"), "send_at")
    groups = (body.get("asm") or {}).get("groups_to_display") if isinstance(body.get("asm"), dict) else None
    if isinstance(groups, list) and len(groups) > MAX_GROUPS_TO_DISPLAY:
        errors.append(_error("asm.groups_to_display", f"At most {MAX_GROUPS_TO_DISPLAY} groups may be displayed."))
    for i, p in enumerate(personalizations):
        errors += _personalization_errors(p, i, has_subject=bool(subject) or "template_id" in body)
    return errors


def _content_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body.get("content")
    if content is None and "template_id" in body:
        return []
    if not isinstance(content, list) or not content:
        return [_error("content", "Unless a valid template_id is provided, the content parameter is required. "
                                  "There must be at least one defined content block.")]
    errors = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            errors.append(_error(f"content.{i}", "Invalid type. Expected: object."))
            continue
        for key in ("type", "value"):
            if not isinstance(part.get(key), str) or not part[key]:
                errors.append(_error(f"content.{i}.{key}", f"The content {key} must be a non-empty string."))
    types = [part.get("type") for part in content if isinstance(part, dict)]
    if "text/plain" in types and "text/html" in types and types.index("text/html") < types.index("text/plain"):
        errors.append(_error("content", "If present, text/plain and text/html may only be provided in that order."))
    return errors


def _category_errors(categories: Any) -> list[dict[str, Any]]:
    if categories is None:
        return []
    if not isinstance(categories, list):
        return [_error("categories", "Invalid type. Expected: array.")]
    errors = []
    if len(categories) > MAX_CATEGORIES:
        errors.append(_error("categories", f"You may not have more than {MAX_CATEGORIES} categories per request."))
    if len(set(map(str, categories))) != len(categories):
        errors.append(_error("categories", "Categories must be unique."))
    for i, category in enumerate(categories):
        if not isinstance(category, str) or len(category) > MAX_CATEGORY_CHARS:
            errors.append(_error(f"categories.{i}", f"A category is a string of at most {MAX_CATEGORY_CHARS} characters."))
    return errors
