"""Sequence definitions: the YAML format staff write, validated into plain pydantic models.

A definition says what a sequence is (trigger, steps, send window, exit goals); it holds no state.
The database keeps the definition (``to_data`` gives a JSON-safe dict) and one row per step; the
engine reads the models below. Every model forbids unknown fields, so a misspelt field is an error
rather than a setting silently ignored.

Step keys: a step's ``key`` tells steps apart across edits (an enrolment waiting for "costs" still
waits for "costs" after a step is inserted before it). A step written without a key gets
"step-<position>" (1-based). Those derived keys follow the position, so inserting or removing a step
in the middle of a keyless file renumbers the later steps; ``to_yaml`` always writes keys out, so once
a sequence has been exported and loaded back its keys stay put. Give keys by hand to be safe.
"""

import itertools
import re
from enum import StrEnum
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from annotated_types import Gt
from markdown_it import MarkdownIt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from newsletter import plain_yaml
from newsletter.errors import InputError
from newsletter.models import Post
from newsletter.plain_yaml import PlainLoader
from newsletter.posts.markdown import parse_markdown
from newsletter.compose.preflight import health_terms_in
from newsletter.compose.render import EmailContent
from subscribers.contacts import clean_tag
from subscribers.languages import check_language
from subscribers.leads import STAGES
from subscribers.lists import SLUG as LIST_SLUG

# Templates a step may name, mapped to their MJML layout. One layout serves issues and steps today;
# a new layout is added here (and under templates/email/) before a definition may use it.
TEMPLATES: dict[str, str] = {"default": "email/issue.mjml.j2"}
DEFAULT_TEMPLATE = "default"

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
class TriggerType(StrEnum):
    """What enrols a contact (``Trigger.type``, stored as ``sequences.trigger_type``)."""

    LIST_CONFIRMED = "list_confirmed"
    LEAD_CREATED = "lead_created"
    TAG_ADDED = "tag_added"
    MANUAL = "manual"  # staff enrol by hand


TRIGGER_TYPES = tuple(TriggerType)


class GoalType(StrEnum):
    """What ends an enrolment when reached (``Goal.type``)."""

    BOOKING = "booking"
    LEAD_STAGE = "lead_stage"
    UNSUBSCRIBED = "unsubscribed"
    TAG = "tag"
    CLICKED = "clicked"


GOAL_TYPES = tuple(GoalType)

MAX_NAME = 100
MAX_SUBJECT = 150
MAX_PREHEADER = 200
MAX_KEY = 100
# A delay longer than this is almost surely a typo ("20w" for "2w").
MAX_DELAY = timedelta(days=365)

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_DURATION_RE = re.compile(
    r"^(?:(?P<w>\d+)\s*w)?\s*(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?$", re.IGNORECASE
)
# Only the placeholders the layout itself emits are ever filled; one written into content would be
# shown as typed (render guards it), so it is refused here with the reason.
_PLACEHOLDER_RE = re.compile(r"%%\w+%%")


# --- durations -------------------------------------------------------------------------------------

def parse_duration(value: Any) -> timedelta:
    """'0', '30m', '12h', '2d', '1w' or combinations in w-d-h-m order ('1d12h') -> a timedelta.

    YAML reads a bare ``0`` as an integer, so 0 is accepted; any other bare number has no unit.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):  # bool is an int: catch it before the int branch
        # ValueError, not TypeError, throughout: pydantic turns only ValueError into a field error.
        raise ValueError(f"{value!r} is not a duration like 2d, 12h, 30m")  # noqa: TRY004
    elif isinstance(value, int):
        if value < 0:
            raise ValueError(f"'{value}' is negative; use 0 or more")
        if value != 0:
            raise ValueError(f"{value} has no unit; write it like {value}d, {value}h or {value}m")
        result = timedelta(0)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"{value!r} is negative; use 0 or more")
        match = _DURATION_RE.match("0m" if text == "0" else text)
        if match is None or not any(match.groupdict().values()):  # the empty string matches too
            raise ValueError(f"{value!r} is not a duration like 2d, 12h, 30m")
        parts = {unit: int(n or 0) for unit, n in match.groupdict().items()}
        try:
            result = timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"])
        except OverflowError:  # past what a timedelta holds (999,999,999 days): far past the longest
            raise ValueError(f"{value!r} is longer than a year; the longest delay is 52w") from None
    else:
        raise ValueError(f"{value!r} is not a duration like 2d, 12h, 30m")  # noqa: TRY004
    if result < timedelta(0):
        raise ValueError(f"'-{format_duration(-result)}' is negative; use 0 or more")
    if result % timedelta(minutes=1):
        raise ValueError(f"{result} is not a whole number of minutes")
    if result > MAX_DELAY:
        raise ValueError(f"{value!r} is longer than a year; the longest delay is 52w")
    return result


def format_duration(delta: timedelta) -> str:
    """The compact form ``parse_duration`` reads: '0', '2w', '9d', '1d12h', '30m'."""
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0:
        return "0"
    if minutes % (7 * 24 * 60) == 0:  # weeks only when exact: "9d" reads better than "1w2d"
        return f"{minutes // (7 * 24 * 60)}w"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n)


# JSON dumps (model_dump(mode="json"), e.g. for a JSON column) write the compact form too, so that
# parse_definition reads them back; pydantic's default would be ISO 8601 ("P1DT12H").
Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, when_used="json")
]


# --- small field checks ----------------------------------------------------------------------------

def _one_line(value: str) -> str:
    """Subjects and the like: whitespace (newlines too: they would break a mail header) collapsed."""
    return " ".join(value.split())


def _no_placeholders(value: str) -> str:
    found = _PLACEHOLDER_RE.search(value)
    if found:
        raise ValueError(
            f"{found.group(0)} would be shown as typed: content cannot use placeholders "
            "(the layout already greets each contact by first name; for a custom field write a merge tag, "
            '{{ field.NAME | default: "text" }}, in the body)'
        )
    return value


def _time(value: Any, *, allow_24: bool) -> str:
    """'HH:MM' (or 'H:MM'), returned zero-padded. For an end (``allow_24``), 00:00 means the
    midnight that ends the day and is stored as 24:00."""
    match = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    valid = 0 <= minutes < 60 and (0 <= hours < 24 or (allow_24 and hours == 24 and minutes == 0))
    if not valid:
        hint = " (quote times in YAML: '17:00')" if isinstance(value, int) else ""
        latest = "24:00" if allow_24 else "23:59"
        raise ValueError(f"{value!r} is not a time like 09:00 (00:00 to {latest}){hint}")
    if allow_24 and (hours, minutes) == (0, 0):
        return "24:00"
    return f"{hours:02d}:{minutes:02d}"


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the models ------------------------------------------------------------------------------------

class Trigger(_Strict):
    """What enrols a contact. ``list`` names a list (its slug) for list_confirmed; ``tag`` names the
    tag for tag_added; the other types take neither."""

    model_config = ConfigDict(use_enum_values=True)  # stored and written back as its plain value

    type: TriggerType
    list: str | None = None
    tag: str | None = None

    @field_validator("list")
    @classmethod
    def _list_slug(cls, value: str | None) -> str | None:
        if value is not None and not LIST_SLUG.match(value):
            raise ValueError(f"{value!r} is not a list name: use lower-case letters, digits and dashes")
        return value

    @field_validator("tag")
    @classmethod
    def _clean_tag(cls, value: str | None) -> str | None:
        return None if value is None else clean_tag(value)  # its InputError is a ValueError

    @model_validator(mode="after")
    def _fields_fit_type(self) -> "Trigger":
        needed = {TriggerType.LIST_CONFIRMED: "list", TriggerType.TAG_ADDED: "tag"}.get(self.type)
        if needed and getattr(self, needed) is None:
            example = "newsletter" if needed == "list" else "NAME"
            raise ValueError(f"a {self.type} trigger needs {needed}: (e.g. {needed}: {example})")
        for name in ("list", "tag"):
            if name != needed and getattr(self, name) is not None:
                raise ValueError(f"{name}: does not apply to a {self.type} trigger")
        return self


# Every day, 08:00-20:00 in the contact's time zone. Weekdays only would hold a Friday-evening
# sign-up's welcome until Monday, which feels cold; what matters most is never buzzing a phone at
# night (and this audience's sleep matters). A sequence whose emails invite replies or calls narrows
# it to the clinic's hours (the shipped consultation follow-up does).
DEFAULT_DAYS: tuple[str, ...] = DAYS
DEFAULT_START = "08:00"
DEFAULT_END = "20:00"


class Window(_Strict):
    """When steps may be sent, in the contact's own time zone: a step due outside the window waits
    for it to open. ``end`` may be 24:00 (midnight at the end of the day; 00:00 is read as
    24:00); windows that cross midnight are not supported (start must be before end)."""

    days: list[Day] = Field(default_factory=lambda: list(DEFAULT_DAYS), min_length=1)
    start: str = DEFAULT_START
    end: str = DEFAULT_END

    @field_validator("days", mode="before")
    @classmethod
    def _lower_days(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [d.strip().lower() if isinstance(d, str) else d for d in value]
        return value

    @field_validator("days")
    @classmethod
    def _week_order(cls, value: list[str]) -> list[str]:
        return [d for d in DAYS if d in value]  # de-duplicated, in week order

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> str:
        return _time(value, allow_24=False)

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, value: Any) -> str:
        return _time(value, allow_24=True)

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.start_minute >= self.end_minute:
            raise ValueError(
                f"start {self.start} must be before end {self.end} (windows cannot cross midnight)"
            )
        return self

    @property
    def start_minute(self) -> int:
        """Minutes after local midnight when the window opens (0-1439)."""
        return _minutes(self.start)

    @property
    def end_minute(self) -> int:
        """Minutes after local midnight when the window closes (1-1440; exclusive)."""
        return _minutes(self.end)


class Goal(_Strict):
    """Reaching a goal ends the enrolment at once. ``stage`` goes with lead_stage, ``tag`` with tag,
    ``url`` (absolute http/https, matched against clicked links) with clicked."""

    model_config = ConfigDict(use_enum_values=True)  # stored and written back as its plain value

    type: GoalType
    stage: str | None = None
    tag: str | None = None
    url: str | None = None

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGES:
            raise ValueError(f"{value!r} is not a lead stage ({', '.join(STAGES)})")
        return value

    @field_validator("tag")
    @classmethod
    def _clean_tag(cls, value: str | None) -> str | None:
        return None if value is None else clean_tag(value)  # its InputError is a ValueError

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _fields_fit_type(self) -> "Goal":
        needed = {"lead_stage": "stage", "tag": "tag", "clicked": "url"}.get(self.type)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"a {self.type} goal needs {needed}:")
        for name in ("stage", "tag", "url"):
            if name != needed and getattr(self, name) is not None:
                raise ValueError(f"{name}: does not apply to a {self.type} goal")
        return self


class Condition(_Strict):
    """Send the step only if this holds; otherwise skip it and go on to the next one. Exactly one of:
    the contact opened the previous step, clicked in it, or has a tag."""

    opened_previous: bool | None = None
    clicked_previous: bool | None = None
    has_tag: str | None = None

    @field_validator("opened_previous", "clicked_previous")
    @classmethod
    def _only_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("false means no condition; leave the condition out instead")
        return value

    @field_validator("has_tag")
    @classmethod
    def _clean_tag(cls, value: str | None) -> str | None:
        return None if value is None else clean_tag(value)  # its InputError is a ValueError

    @model_validator(mode="after")
    def _exactly_one(self) -> "Condition":
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if not given:
            raise ValueError("a condition needs one of opened_previous: true, clicked_previous: true, has_tag: NAME")
        if len(given) > 1:
            raise ValueError(f"a condition takes one test, not several ({' and '.join(given)})")
        return self

    @property
    def needs_previous(self) -> bool:
        return bool(self.opened_previous or self.clicked_previous)


class StepTranslation(_Strict):
    """A step in another language: its own subject, preheader and body (Markdown) or post. Contacts
    who read that language get it (newsletter.versions); the step's key, delay, condition and
    template are the step's."""

    subject: str
    preheader: str = ""
    body: str | None = None
    post: Annotated[int, Strict(), Gt(0)] | None = None

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return Step._subject(value)

    @field_validator("preheader", mode="before")
    @classmethod
    def _preheader(cls, value: Any) -> Any:
        return Step._preheader(value)

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        return Step._body(value)

    @model_validator(mode="after")
    def _body_or_post(self) -> "StepTranslation":
        if (self.body is None) == (self.post is None):
            raise ValueError("a translation needs a body (Markdown) or a post (a post id), one of them")
        return self


class Step(_Strict):
    """One email. ``delay`` runs from the previous step (from enrolment for the first). The body is
    either Markdown (``body``) or an imported post (``post``, its id); both render through the layout
    ``TEMPLATES[template]``. ``preheader`` "" means none."""

    key: str = Field(max_length=MAX_KEY)
    delay: Duration
    subject: str
    preheader: str = ""
    body: str | None = None
    post: Annotated[int, Strict(), Gt(0)] | None = None  # strict: `post: true` is not post 1
    template: str = DEFAULT_TEMPLATE
    condition: Condition | None = None
    # The step in other languages, by language (en, es): ``translations: {es: {subject, body}}``.
    translations: dict[str, StepTranslation] = Field(default_factory=dict)

    @field_validator("translations", mode="before")
    @classmethod
    def _languages(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic says what type it wants
        read = {}
        for tag, translation in value.items():
            try:
                language = check_language(str(tag))
            except InputError as exc:
                raise ValueError(str(exc)) from None
            if language in read:
                raise ValueError(f"{tag!r} repeats the translation in {language!r}")
            read[language] = translation
        return read

    def translated(self, language: str) -> "Step":
        """This step as its translation in ``language`` says: another subject, preheader and body."""
        tr = self.translations[language]
        return self.model_copy(update={"subject": tr.subject, "preheader": tr.preheader, "body": tr.body,
                                       "post": tr.post, "translations": {}})

    @field_validator("key")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not value:
            raise ValueError("a step needs a key: lower-case letters, digits and dashes, e.g. check-in")
        if not _KEY_RE.match(value):
            raise ValueError(f"{value!r} is not a key: use lower-case letters, digits and dashes")
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        value = _one_line(value)
        if not value:
            raise ValueError("a step needs a subject")
        if len(value) > MAX_SUBJECT:
            raise ValueError(f"the subject is {len(value)} characters; keep it to {MAX_SUBJECT}")
        return _no_placeholders(value)

    @field_validator("preheader", mode="before")
    @classmethod
    def _preheader(cls, value: Any) -> Any:
        if value is None:  # "preheader:" left empty in YAML
            return ""
        if isinstance(value, str):
            value = _one_line(value)
            if len(value) > MAX_PREHEADER:
                raise ValueError(f"the preheader is {len(value)} characters; keep it to {MAX_PREHEADER}")
            return _no_placeholders(value)
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Trailing spaces are dropped so an export can always use a readable YAML block (|); a
        # Markdown hard line break is written with a backslash at the end of the line instead.
        lines = [line.rstrip() for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
        text = "\n".join(lines).strip("\n")
        if not text.strip():
            raise ValueError("the body is empty")
        return _no_placeholders(text) + "\n"

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value not in TEMPLATES:
            raise ValueError(f"unknown template {value!r} (available: {', '.join(TEMPLATES)})")
        return value

    @model_validator(mode="after")
    def _body_or_post(self) -> "Step":
        if self.body is not None and self.post is not None:
            raise ValueError("give either body (Markdown) or post (a post id), not both")
        if self.body is None and self.post is None:
            raise ValueError("a step needs a body (Markdown) or a post (a post id)")
        return self


class SequenceDefinition(_Strict):
    """A whole sequence. ``reenroll``: whether a contact who finished or left may be enrolled again
    (False: once per contact, ever)."""

    name: str = Field(max_length=MAX_NAME)
    description: str = ""
    trigger: Trigger
    window: Window = Field(default_factory=Window)
    goals: list[Goal] = Field(default_factory=list)
    reenroll: bool = False
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _derive_keys(cls, data: Any) -> Any:
        """A step without a key gets 'step-<position>' (see the module docstring)."""
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            steps = [
                {**step, "key": f"step-{n}"} if isinstance(step, dict) and step.get("key") is None else step
                for n, step in enumerate(data["steps"], 1)
            ]
            data = {**data, "steps": steps}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = _one_line(value)
        if not value:
            raise ValueError("a sequence needs a name")
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: Any) -> Any:
        return "" if value is None else value.strip() if isinstance(value, str) else value

    @field_validator("goals")
    @classmethod
    def _distinct_goals(cls, goals: list[Goal]) -> list[Goal]:
        for n, goal in enumerate(goals):
            if goal in goals[:n]:
                raise ValueError(f"goals[{n}] repeats goals[{goals.index(goal)}]")
        return goals

    @field_validator("steps")
    @classmethod
    def _steps_fit_together(cls, steps: list[Step]) -> list[Step]:
        first_seen: dict[str, int] = {}
        for n, step in enumerate(steps):
            if step.key in first_seen:
                raise ValueError(
                    f"steps[{n}].key {step.key!r} is already used by steps[{first_seen[step.key]}]; "
                    "keys must be unique"
                )
            first_seen[step.key] = n
        if steps and steps[0].condition is not None and steps[0].condition.needs_previous:
            raise ValueError("steps[0].condition: the first step has no previous step to have opened or clicked")
        return steps

    @property
    def span(self) -> timedelta:
        """Enrolment to the last step, by delays alone (send windows can add a little)."""
        return sum((step.delay for step in self.steps), timedelta(0))

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"{self.name!r} has no step {key!r}")


# --- readable errors -------------------------------------------------------------------------------

_MODEL_OF_FIELD: dict[str, type[BaseModel]] = {
    "trigger": Trigger, "window": Window, "goals": Goal, "steps": Step, "condition": Condition,
    "translations": StepTranslation,
}
_MISSING: dict[str, str] = {
    "name": "a sequence needs a name",
    "trigger": "a sequence needs a trigger (type: list_confirmed, lead_created, tag_added or manual)",
    "steps": "a sequence needs at least one step",
    "delay": "a step needs a delay (0 for at once)",
    "subject": "a step needs a subject",
}
_KINDS = {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list",
          dict: "a mapping", type(None): "nothing"}


def path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _describe(error: dict[str, Any]) -> str:
    kind, loc, given = error["type"], error["loc"], error.get("input")
    field = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        owner = next((_MODEL_OF_FIELD[p] for p in reversed(loc[:-1]) if p in _MODEL_OF_FIELD), SequenceDefinition)
        return f"unknown field (allowed: {', '.join(owner.model_fields)})"
    if kind == "missing":
        if field == "type":
            owner = next((p for p in reversed(loc[:-1]) if isinstance(p, str)), "")
            choices = TRIGGER_TYPES if owner == "trigger" else GOAL_TYPES
            return f"missing (one of {', '.join(choices)})"
        return _MISSING.get(str(field), "this field is required")
    if kind in ("value_error", "assertion_error"):
        return str(error["ctx"]["error"])
    if kind in ("literal_error", "enum"):  # a Literal field, or a StrEnum one (goal types)
        return f"{given!r} is not one of {error['ctx']['expected']}"
    if kind == "too_short":
        if field == "days":
            return f"name at least one day ({', '.join(DAYS)})"
        return "a sequence needs at least one step" if field == "steps" else "needs at least one item"
    if kind == "string_too_long":
        return f"is {len(given)} characters; keep it to {error['ctx']['max_length']}"
    expected = {
        "string_type": "text", "int_type": "a whole number", "int_parsing": "a whole number",
        "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
        "model_type": "a mapping (name: value lines)", "model_attributes_type": "a mapping (name: value lines)",
        "dict_type": "a mapping (name: value lines)", "greater_than": "a number above 0",
    }.get(kind)
    if expected:
        return f"expected {expected}, got {_kind(given)} {given!r}" if given is not None else f"expected {expected}"
    return str(error["msg"])


Problem = tuple[tuple[Any, ...], str]  # where (a path like ("steps", 1, "subject"); () for the whole) and what


def _problems(exc: ValidationError) -> list[Problem]:
    return [(tuple(error["loc"]), _describe(error)) for error in exc.errors()]


class DefinitionError(InputError):
    """A definition that does not validate. The message names ``source`` and each problem's path,
    one per line (what the CLI prints); ``problems`` keeps them by place too, so a form can show each
    one beside its own field."""

    def __init__(self, source: str, problems: list[Problem], message: str | None = None) -> None:
        self.problems = problems
        super().__init__(message or "\n".join(
            f"{source}: {path_text(loc)}: {text}" if loc else f"{source}: {text}" for loc, text in problems))


# --- public functions ------------------------------------------------------------------------------

def parse_definition(data: Any, *, source: str) -> SequenceDefinition:
    """Validate plain data (from YAML, or ``to_data``) into a definition. Markdown bodies are
    converted once too, so a body that makes an empty email is refused now, not at send time.

    Raises InputError naming ``source`` and the path of each problem, one per line.
    """
    try:
        definition = SequenceDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(source, _problems(exc)) from None
    for n, step in enumerate(definition.steps):
        versions = [((), step)] + [(("translations", lang), step.translated(lang)) for lang in step.translations]
        for path, version in versions:
            if version.body is not None:
                where = f"{source}: steps[{n}]{''.join(f'.{p}' for p in path)}.body"
                try:
                    step_content(version, source=where)
                except InputError as exc:
                    text = str(exc).removeprefix(f"{where}: ")
                    raise DefinitionError(source, [(("steps", n, *path, "body"), text)], str(exc)) from None
    return definition


# PyYAML follows YAML 1.1, where 17:00 is the integer 1020 and yes/no/on/off are booleans (a tag
# named "no" would become False). This loader keeps those as text, as YAML 1.2 does, and refuses a
# key written twice in one mapping (PyYAML would keep the last silently). Like all YAML written by
# people here, it takes no aliases and a bounded nesting (``plain_yaml``).
class _Loader(PlainLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"{key_node.value!r} is written twice", key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in PlainLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))


def load_yaml(text: str, *, source: str) -> SequenceDefinition:
    """Parse one YAML document into a definition; any problem is an InputError naming ``source``
    (and, for YAML syntax, the line and column)."""
    try:
        data = plain_yaml.load(text.lstrip("\ufeff"), _Loader)  # plain data: no objects, no aliases
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "YAML"
        problem = exc.problem or str(exc).splitlines()[0]
        if exc.context and exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise InputError(f"{source}: {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        raise InputError(f"{source}: the file is empty; a sequence needs name:, trigger: and steps:")
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: expected a sequence (name:, trigger:, steps: … lines), found {_kind(data)}"
        )
    return parse_definition(data, source=source)


def trimmed_translation(translation: StepTranslation) -> dict[str, Any]:
    item: dict[str, Any] = {"subject": translation.subject}
    if translation.preheader:
        item["preheader"] = translation.preheader
    item.update({"body": translation.body} if translation.body is not None else {"post": translation.post})
    return item


def to_data(definition: SequenceDefinition) -> dict[str, Any]:
    """The definition as plain, JSON-safe data in file order; defaults left out where that reads
    better. ``parse_definition(to_data(d), ...) == d``."""

    def trimmed(model: BaseModel) -> dict[str, Any]:
        return {k: v for k, v in model.model_dump().items() if v is not None}

    steps = []
    for step in definition.steps:
        item: dict[str, Any] = {"key": step.key, "delay": format_duration(step.delay) if step.delay else 0,
                                "subject": step.subject}
        if step.preheader:
            item["preheader"] = step.preheader
        if step.condition is not None:
            item["condition"] = trimmed(step.condition)
        if step.template != DEFAULT_TEMPLATE:
            item["template"] = step.template
        item.update({"body": step.body} if step.body is not None else {"post": step.post})
        if step.translations:
            item["translations"] = {lang: trimmed_translation(tr) for lang, tr in step.translations.items()}
        steps.append(item)
    data: dict[str, Any] = {"name": definition.name}
    if definition.description:
        data["description"] = definition.description
    data["trigger"] = trimmed(definition.trigger)
    data["window"] = definition.window.model_dump()
    data["goals"] = [trimmed(goal) for goal in definition.goals]
    data["reenroll"] = definition.reenroll
    data["steps"] = steps
    return data


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)  # "  - item" under a key: easier to read


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:  # Markdown bodies as literal blocks, exactly as written
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if _TIME_RE.match(value):  # quoted always: other YAML 1.1 readers take 17:00 for a number
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def to_yaml(definition: SequenceDefinition) -> str:
    """The definition as a YAML file ``load_yaml`` reads back to an equal definition."""
    return yaml.dump(to_data(definition), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6)


def step_content(step: Step, *, post: Post | None = None, source: str = "<sequence>",
                 reason: str | None = None) -> EmailContent:
    """What the layout needs for a step: a post step's stored post (its title and blocks; no date
    line, unlike an issue), or a Markdown body, whose first '# ' heading is the email's heading
    (removed from the body), else the subject. Raises InputError (prefixed with ``source``) for a
    body with no text, ValueError for a post step given no post."""
    if step.body is None:
        if post is None:
            raise ValueError(f"step {step.key!r} uses post {step.post}; pass the stored post")
        title, blocks = post.title, post.blocks
    else:
        has_h1 = any(t.type == "heading_open" and t.tag == "h1" for t in MarkdownIt("commonmark").parse(step.body))
        # Front matter is always given (empty or with the subject as title) so that a body opening with
        # '---' (a rule in Markdown) is never read as front matter of its own.
        front = yaml.safe_dump({} if has_h1 else {"title": step.subject}, allow_unicode=True)
        parsed = parse_markdown(f"---\n{'' if has_h1 else front}---\n{step.body}", source_name=source)
        title, blocks = parsed.title, [block.to_dict() for block in parsed.blocks]
    return EmailContent(subject=step.subject, preheader=step.preheader or "", title=title or step.subject,
                        blocks=blocks, reason=reason)


def health_warnings(definition: SequenceDefinition) -> list[str]:
    """Health words in subjects and preheaders (they show on lock screens and shared inboxes), one
    warning per field, naming the step. Warnings, not errors: staff decide, as for issues."""
    warnings = []
    for n, step in enumerate(definition.steps):
        versions = [("", step), *((f"{lang} ", step.translated(lang)) for lang in step.translations)]
        for (which, version), field in itertools.product(versions, ("subject", "preheader")):
            terms = health_terms_in(getattr(version, field))
            if terms:
                warnings.append(
                    f"steps[{n}] ({step.key}): the {which}{field} mentions {', '.join(repr(t) for t in terms)}; "
                    "it shows on lock screens and shared inboxes, so keep health details inside the email"
                )
    return warnings
