"""Editing one step of a stored sequence (change, add, remove), for the staff pages.

Each edit builds the changed definition and loads it exactly as ``newsletter sequences load`` loads a
file (``parse_definition`` validates, ``service.load`` installs): the same rules, the same refusals
with the same messages, and the same outcome for enrolments (a changed step is compiled again, so
contacts waiting for it get the new version; a removed step is kept inactive and never sent again,
and those waiting for it move on; a step added at the end reaches contacts who had finished only
when asked). Nothing here is a second copy of those rules; it only says which field a problem is in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.errors import NotFound
from newsletter.models import Sequence
from newsletter.sequences.definition import (
    Condition,
    DefinitionError,
    SequenceDefinition,
    Step,
    format_duration,
    health_warnings,
    parse_definition,
    path_text,
    to_data,
)
from newsletter.sequences.install import InstallReport
from newsletter.sequences.service import load

# What a step's condition may test (a form offers these, plus none).
CONDITION_KINDS = tuple(Condition.model_fields)
STEP_FIELDS = ("key", "delay", "subject", "preheader", "body", "condition", "condition_tag")
FORM = "form"  # problems that belong to no one field (the sequence as a whole)
REACH_COMPLETED = "reach_completed"
_STEP_PATH = re.compile(r"^steps\[(\d+)\]\.(\w+)")


@dataclass
class StepForm:
    """A step as staff type it. ``body`` None keeps a post step's post; ``condition`` is "" (none)
    or one of CONDITION_KINDS, with ``condition_tag`` for has_tag."""

    delay: str
    subject: str
    preheader: str = ""
    body: str | None = None
    condition: str = ""
    condition_tag: str = ""
    key: str = ""  # a new step's key; an edited step keeps its own

    @classmethod
    def of(cls, step: Step) -> StepForm:
        """The form filled with a stored step."""
        condition = step.condition.model_dump(exclude_none=True) if step.condition else {}
        kind = next(iter(condition), "")
        return cls(delay=format_duration(step.delay) if step.delay else "0", subject=step.subject,
                   preheader=step.preheader, body=step.body, condition=kind,
                   condition_tag=str(condition["has_tag"]) if kind == "has_tag" else "", key=step.key)

    def condition_data(self) -> dict[str, Any] | None:
        if not self.condition:
            return None
        # has_tag takes the tag typed; the others are "true". Anything else is left for validation
        # to name (an unknown field).
        return {self.condition: self.condition_tag.strip() if self.condition == "has_tag" else True}


@dataclass
class Edit:
    """What an edit did: the install report (as `sequences load` prints it), the health warnings
    of the step (as the CLI prints them), and how many contacts were waiting for the step."""

    report: InstallReport
    warnings: list[str] = field(default_factory=list)
    waiting: int = 0


def source_of(sequence: Sequence) -> str:
    return f"sequence {sequence.name!r}"


def definition_of(sequence: Sequence) -> SequenceDefinition:
    return parse_definition(sequence.definition, source=source_of(sequence))


def step_index(definition: SequenceDefinition, key: str) -> int:
    for n, step in enumerate(definition.steps):
        if step.key == key:
            return n
    raise NotFound(f"{definition.name!r} has no step {key!r}")


def _step_data(form: StepForm, before: dict[str, Any] | None) -> dict[str, Any]:
    """The step as definition data: what the form gives over what the step had (its key, template
    and post stay)."""
    item: dict[str, Any] = dict(before or {"key": form.key.strip()})
    item.update(delay=form.delay.strip(), subject=form.subject, preheader=form.preheader)
    item.pop("condition", None)
    if form.condition_data() is not None:
        item["condition"] = form.condition_data()
    if form.body is not None or "post" not in item:
        item.pop("post", None)
        item["body"] = form.body or ""
    return item


def _load_steps(session: Session, settings: Settings, sequence: Sequence, steps: list[dict[str, Any]], now: datetime,
                *, reach_completed: bool = False) -> tuple[SequenceDefinition, InstallReport]:
    """Validate the definition with these steps, then load it as the CLI's `sequences load` does."""
    changed = parse_definition({**to_data(definition_of(sequence)), "steps": steps}, source=source_of(sequence))
    return changed, load(session, settings, changed, now, reach_completed=reach_completed)


def _warnings_of(definition: SequenceDefinition, index: int) -> list[str]:
    return [w for w in health_warnings(definition) if w.startswith(f"steps[{index}] ")]


def step_warnings(sequence: Sequence, key: str) -> list[str]:
    """The health warnings of a stored step (what `sequences load` printed for it)."""
    definition = definition_of(sequence)
    return _warnings_of(definition, step_index(definition, key))


def edit_step(session: Session, settings: Settings, sequence: Sequence, key: str, form: StepForm, now: datetime,
              waiting: int = 0) -> Edit:
    steps = to_data(definition_of(sequence))["steps"]
    index = next((n for n, s in enumerate(steps) if s["key"] == key), None)
    if index is None:
        raise NotFound(f"{sequence.name!r} has no step {key!r}")
    steps[index] = _step_data(form, steps[index])
    definition, report = _load_steps(session, settings, sequence, steps, now)
    return Edit(report, _warnings_of(definition, index), waiting)


def insert_at(definition: SequenceDefinition, *, after: str | None = None, at_start: bool = False) -> int:
    """Where a new step goes: at the start, after step ``after`` (a key), or else at the end."""
    if at_start:
        return 0
    if after is not None:
        return step_index(definition, after) + 1
    return len(definition.steps)


def add_step(session: Session, settings: Settings, sequence: Sequence, form: StepForm, now: datetime, *,
             index: int, reach_completed: bool = False) -> Edit:
    """Add a step at ``index`` (see ``insert_at``). Only a step added at the end may reach contacts
    who had finished (`sequences load --reach-completed`)."""
    steps = to_data(definition_of(sequence))["steps"]
    index = max(0, min(index, len(steps)))
    if reach_completed and index != len(steps):
        raise DefinitionError(source_of(sequence), [(
            (REACH_COMPLETED,), "only a step added at the end can reach contacts who had finished")])
    steps.insert(index, _step_data(form, None))
    definition, report = _load_steps(session, settings, sequence, steps, now, reach_completed=reach_completed)
    return Edit(report, _warnings_of(definition, index))


def remove_step(session: Session, settings: Settings, sequence: Sequence, key: str, now: datetime,
                waiting: int = 0) -> Edit:
    steps = to_data(definition_of(sequence))["steps"]
    kept = [s for s in steps if s["key"] != key]
    if len(kept) == len(steps):
        raise NotFound(f"{sequence.name!r} has no step {key!r}")
    _, report = _load_steps(session, settings, sequence, kept, now)
    return Edit(report, waiting=waiting)


def field_errors(exc: DefinitionError, index: int) -> dict[str, str]:
    """Each problem of a refused edit of step ``index``, by the form field it belongs to (FORM for
    the rest, with its path as `sequences load` prints it)."""
    errors: dict[str, list[str]] = {}
    for loc, text in exc.problems:
        name, message = FORM, text
        if loc[:2] == ("steps", index) and len(loc) > 2 and loc[2] in STEP_FIELDS:
            name = "condition_tag" if loc[2] == "condition" and loc[3:4] == ("has_tag",) else str(loc[2])
        elif loc == ("steps",) and (found := _STEP_PATH.match(text)) and int(found.group(1)) == index \
                and found.group(2) in STEP_FIELDS:
            name, message = found.group(2), text.split(": ", 1)[-1]
        elif loc == ("steps",) and "keys must be unique" in text and f"steps[{index}]" in text:
            name = "key"
        elif loc == (REACH_COMPLETED,):
            name = REACH_COMPLETED
        elif name == FORM and loc:
            message = f"{path_text(loc)}: {text}"
        errors.setdefault(name, []).append(message)
    return {name: "; ".join(messages) for name, messages in errors.items()}


def delay_of(seconds: int) -> str:
    """A stored delay in the form staff write it ('0', '2d', '1d12h')."""
    return format_duration(timedelta(seconds=seconds))
