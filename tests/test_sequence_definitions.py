"""Sequence definitions: YAML in, validated models, clear errors, YAML out; and the shipped sequences."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.errors import InputError
from newsletter.compose.preflight import check_email
from newsletter.compose.render import render_email
from newsletter.sequences import definition as defn_module
from newsletter.sequences.definition import (
    Condition,
    SequenceDefinition,
    format_duration,
    health_warnings,
    load_yaml,
    parse_definition,
    parse_duration,
    step_content,
    to_data,
    to_yaml,
)
from newsletter.sequences.library import (
    SHIPPED_FILES,
    library_folder,
    shipped_definitions,
    shipped_yaml,
)


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Hello",
        "trigger": {"type": "manual"},
        "steps": [{"delay": 0, "subject": "Hello there", "body": "A short note.\n"}],
    }
    data.update(overrides)
    return data


def step(**fields: Any) -> dict[str, Any]:
    return {"delay": "1d", "subject": "A subject", "body": "Some text.", **fields}


def error_of(data: Any, source: str = "welcome.yaml") -> str:
    with pytest.raises(InputError) as caught:
        parse_definition(data, source=source)
    return str(caught.value)


FULL_YAML = """\
name: Everything at once
description: Uses every field.
trigger:
  type: list_confirmed
  list: newsletter
window:
  days: [fri, mon, Mon, wed]
  start: 7:30
  end: 24:00
goals:
  - type: booking
  - type: lead_stage
    stage: booked
  - type: unsubscribed
  - type: tag
    tag: No
  - type: clicked
    url: https://clinic.example/visit
reenroll: true
steps:
  - key: first
    delay: 0
    subject: "  First   email  "
    preheader: A preheader.
    body: |
      # A heading of its own

      A paragraph with *emphasis* and a [link](https://clinic.example/a).

      - one
      - two
  - delay: 1d12h
    subject: Second
    post: 7
    condition:
      opened_previous: true
  - key: third
    delay: 1w
    subject: Third
    template: default
    condition:
      has_tag: Yes
    body: Plain text, no heading.
"""


# --- valid definitions ------------------------------------------------------------------------------

def test_minimal_definition_gets_documented_defaults() -> None:
    d = parse_definition(minimal(), source="hello.yaml")
    assert d.name == "Hello" and d.description == "" and d.reenroll is False and d.goals == []
    assert d.trigger.type == "manual" and d.trigger.list is None and d.trigger.tag is None
    assert (d.window.days, d.window.start, d.window.end) == (list(defn_module.DAYS), "08:00", "20:00")
    (only,) = d.steps
    assert (only.key, only.delay, only.template, only.preheader, only.condition, only.post) == (
        "step-1", timedelta(0), "default", "", None, None,
    )
    assert only.body == "A short note.\n"


def test_full_definition_from_yaml() -> None:
    d = load_yaml(FULL_YAML, source="full.yaml")
    assert d.trigger.list == "newsletter"
    # De-duplicated, in week order; unquoted times stay text (PyYAML alone would read 24:00 as 1440).
    assert d.window.days == ["mon", "wed", "fri"]
    assert (d.window.start, d.window.end, d.window.start_minute, d.window.end_minute) == ("07:30", "24:00", 450, 1440)
    assert [g.type for g in d.goals] == ["booking", "lead_stage", "unsubscribed", "tag", "clicked"]
    assert d.goals[1].stage == "booked" and d.goals[4].url == "https://clinic.example/visit"
    assert d.goals[3].tag == "no"  # a tag called "No" is text, not YAML 1.1's false (and tags are lower case)
    assert d.reenroll is True
    assert [s.key for s in d.steps] == ["first", "step-2", "third"]
    assert d.steps[0].subject == "First email"
    assert d.steps[1].post == 7 and d.steps[1].body is None
    assert d.steps[1].condition == Condition(opened_previous=True)
    assert d.steps[2].condition == Condition(has_tag="yes")
    assert [s.delay for s in d.steps] == [timedelta(0), timedelta(days=1, hours=12), timedelta(weeks=1)]
    assert d.span == timedelta(days=8, hours=12)
    assert d.step("third").subject == "Third"
    with pytest.raises(KeyError, match="no step .nope."):
        d.step("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, timedelta(0)), ("0", timedelta(0)), ("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)), ("1w", timedelta(weeks=1)), ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m", timedelta(days=9, hours=3, minutes=4)), (" 2D ", timedelta(days=2)),
        ("1d 12h", timedelta(days=1, hours=12)),
    ],
)
def test_durations_parse(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0"), (timedelta(days=14), "2w"), (timedelta(days=9), "9d"),
        (timedelta(days=1, hours=12), "1d12h"), (timedelta(minutes=30), "30m"),
        (timedelta(days=2, minutes=5), "2d5m"),
    ],
)
def test_durations_are_written_back_compactly(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == delta


# --- the errors the issue names ---------------------------------------------------------------------

def test_unknown_field_is_named_with_its_path() -> None:
    message = error_of(minimal(steps=[step(colour="blue")]))
    assert message.startswith("welcome.yaml: steps[0].colour: unknown field")
    assert "allowed: key, delay, subject" in message
    assert error_of(minimal(colour="blue")).startswith("welcome.yaml: colour: unknown field (allowed: name,")
    assert "window.timezone: unknown field" in error_of(minimal(window={"timezone": "UTC"}))
    assert "steps[0].condition.opened: unknown field" in error_of(minimal(steps=[step(condition={"opened": True})]))


def test_negative_delay() -> None:
    message = error_of(minimal(steps=[step(), step(), step(delay="-1d")]))
    assert message == "welcome.yaml: steps[2].delay: '-1d' is negative; use 0 or more"
    assert "steps[0].delay: '-5' is negative" in error_of(minimal(steps=[step(delay=-5)]))


def test_step_without_a_subject() -> None:
    missing = {"delay": 0, "body": "Text."}
    assert error_of(minimal(steps=[step(), missing])) == "welcome.yaml: steps[1].subject: a step needs a subject"
    assert error_of(minimal(steps=[step(subject="   ")])) == "welcome.yaml: steps[0].subject: a step needs a subject"


def test_unknown_template_lists_the_available_ones() -> None:
    message = error_of(minimal(steps=[step(template="fancy")]))
    assert message == "welcome.yaml: steps[0].template: unknown template 'fancy' (available: default)"


def test_the_template_list_can_be_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(defn_module.TEMPLATES, "plain", "email/plain.mjml.j2")
    d = parse_definition(minimal(steps=[step(template="plain")]), source="x.yaml")
    assert d.steps[0].template == "plain"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two days", "'two days' is not a duration like 2d, 12h, 30m"),
        ("2", "'2' is not a duration like 2d, 12h, 30m"),
        (2, "2 has no unit; write it like 2d, 2h or 2m"),
        ("1.5d", "'1.5d' is not a duration like 2d, 12h, 30m"),
        ("12h1d", "'12h1d' is not a duration like 2d, 12h, 30m"),
        ("", "'' is not a duration like 2d, 12h, 30m"),
        (True, "True is not a duration like 2d, 12h, 30m"),
        ("60w", "'60w' is longer than a year; the longest delay is 52w"),
    ],
)
def test_malformed_durations(value: Any, message: str) -> None:
    assert error_of(minimal(steps=[step(delay=value)])) == f"welcome.yaml: steps[0].delay: {message}"


def test_missing_delay_says_zero_means_at_once() -> None:
    assert "steps[0].delay: a step needs a delay (0 for at once)" in error_of(
        minimal(steps=[{"subject": "s", "body": "b"}])
    )


# --- triggers, goals, conditions, windows ------------------------------------------------------------

@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"type": "list_confirmed"}, "trigger: a list_confirmed trigger needs list: (e.g. list: newsletter)"),
        ({"type": "tag_added"}, "trigger: a tag_added trigger needs tag: (e.g. tag: NAME)"),
        ({"type": "tag_added", "tag": "x", "list": "newsletter"}, "trigger: list: does not apply to a tag_added trigger"),
        ({"type": "lead_created", "list": "newsletter"}, "trigger: list: does not apply to a lead_created trigger"),
        ({"type": "manual", "tag": "vip"}, "trigger: tag: does not apply to a manual trigger"),
        ({"type": "list_confirmed", "list": "My List"}, "trigger.list: 'My List' is not a list name"),
        ({"type": "tag_added", "tag": "  "}, "trigger.tag: tag '' must be 1 to 100 characters"),
        ({"type": "signup"}, "trigger.type: 'signup' is not one of 'list_confirmed', 'lead_created', 'tag_added' or 'manual'"),
        ({}, "trigger.type: missing (one of list_confirmed, lead_created, tag_added, manual)"),
    ],
)
def test_trigger_fields_must_fit_the_type(trigger: dict[str, Any], message: str) -> None:
    assert f"welcome.yaml: {message}" in error_of(minimal(trigger=trigger))


def test_valid_triggers() -> None:
    tag = parse_definition(minimal(trigger={"type": "tag_added", "tag": " Spring  Event "}), source="x")
    assert (tag.trigger.type, tag.trigger.tag, tag.trigger.list) == ("tag_added", "spring event", None)
    assert parse_definition(minimal(trigger={"type": "lead_created"}), source="x").trigger.type == "lead_created"


@pytest.mark.parametrize(
    ("goal", "message"),
    [
        ({"type": "lead_stage"}, "goals[0]: a lead_stage goal needs stage:"),
        ({"type": "lead_stage", "stage": "won"}, "goals[0].stage: 'won' is not a lead stage (new, contacted, booked, attended, lost)"),
        ({"type": "clicked"}, "goals[0]: a clicked goal needs url:"),
        ({"type": "clicked", "url": "/book"}, "goals[0].url: '/book' is not an absolute http(s) URL"),
        ({"type": "clicked", "url": "ftp://x.example/a"}, "goals[0].url: 'ftp://x.example/a' is not an absolute http(s) URL"),
        ({"type": "booking", "url": "https://x.example"}, "goals[0]: url: does not apply to a booking goal"),
        ({"type": "tag", "stage": "booked"}, "goals[0]: a tag goal needs tag:"),
        ({"type": "tag", "tag": "a", "stage": "booked"}, "goals[0]: stage: does not apply to a tag goal"),
        ({"type": "won"}, "goals[0].type: 'won' is not one of 'booking', 'lead_stage', 'unsubscribed', 'tag' or 'clicked'"),
    ],
)
def test_goal_fields_must_fit_the_type(goal: dict[str, Any], message: str) -> None:
    assert f"welcome.yaml: {message}" in error_of(minimal(goals=[goal]))


def test_a_goal_written_twice_is_refused() -> None:
    message = error_of(minimal(goals=[{"type": "booking"}, {"type": "unsubscribed"}, {"type": "booking"}]))
    assert message == "welcome.yaml: goals: goals[2] repeats goals[0]"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({}, "a condition needs one of opened_previous: true, clicked_previous: true, has_tag: NAME"),
        ({"opened_previous": True, "has_tag": "x"}, "a condition takes one test, not several (opened_previous and has_tag)"),
    ],
)
def test_a_condition_is_exactly_one_test(condition: dict[str, Any], message: str) -> None:
    assert error_of(minimal(steps=[step(), step(condition=condition)])) == f"welcome.yaml: steps[1].condition: {message}"


def test_a_false_condition_is_refused_with_a_hint() -> None:
    message = error_of(minimal(steps=[step(), step(condition={"clicked_previous": False})]))
    assert message == (
        "welcome.yaml: steps[1].condition.clicked_previous: false means no condition; leave the condition out instead"
    )


def test_the_first_step_cannot_depend_on_a_previous_one() -> None:
    message = error_of(minimal(steps=[step(condition={"opened_previous": True})]))
    assert "steps[0].condition: the first step has no previous step to have opened or clicked" in message
    first_with_tag = parse_definition(minimal(steps=[step(condition={"has_tag": "vip"})]), source="x")
    assert first_with_tag.steps[0].condition == Condition(has_tag="vip")


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "18:00", "end": "09:00"}, "window: start 18:00 must be before end 09:00 (windows cannot cross midnight)"),
        ({"start": "09:00", "end": "09:00"}, "window: start 09:00 must be before end 09:00"),
        ({"start": "25:00"}, "window.start: '25:00' is not a time like 09:00 (00:00 to 23:59)"),
        ({"start": "24:00"}, "window.start: '24:00' is not a time like 09:00 (00:00 to 23:59)"),
        ({"end": "9am"}, "window.end: '9am' is not a time like 09:00 (00:00 to 24:00)"),
        ({"start": 1020}, "window.start: 1020 is not a time like 09:00 (00:00 to 23:59) (quote times in YAML: '17:00')"),
        ({"days": []}, "window.days: name at least one day (mon, tue, wed, thu, fri, sat, sun)"),
        ({"days": ["monday"]}, "window.days[0]: 'monday' is not one of 'mon', 'tue'"),
    ],
)
def test_window_errors(window: dict[str, Any], message: str) -> None:
    assert f"welcome.yaml: {message}" in error_of(minimal(window=window))


# --- steps ----------------------------------------------------------------------------------------

def test_body_and_post_together_or_neither() -> None:
    both = error_of(minimal(steps=[step(post=3)]))
    assert both == "welcome.yaml: steps[0]: give either body (Markdown) or post (a post id), not both"
    neither = error_of(minimal(steps=[{"delay": 0, "subject": "s"}]))
    assert neither == "welcome.yaml: steps[0]: a step needs a body (Markdown) or a post (a post id)"


@pytest.mark.parametrize(("post", "shown"), [(True, "true/false True"), ("3", "text '3'"), (0, None)])
def test_a_post_is_a_positive_whole_number(post: Any, shown: str | None) -> None:
    message = error_of(minimal(steps=[{"delay": 0, "subject": "s", "post": post}]))
    assert message.startswith("welcome.yaml: steps[0].post: ")
    assert (f"expected a whole number, got {shown}" in message) if shown else ("expected a number above 0" in message)


def test_duplicate_step_keys() -> None:
    message = error_of(minimal(steps=[step(key="intro"), step(key="costs"), step(key="intro")]))
    assert message == "welcome.yaml: steps: steps[2].key 'intro' is already used by steps[0]; keys must be unique"
    # A written key may collide with a derived one ("step-1" is what the first keyless step gets).
    assert "steps[1].key 'step-1' is already used by steps[0]" in error_of(minimal(steps=[step(), step(key="step-1")]))


def test_a_key_is_a_slug() -> None:
    assert "steps[0].key: 'Intro Step' is not a key: use lower-case letters, digits and dashes" in error_of(
        minimal(steps=[step(key="Intro Step")])
    )


def test_placeholders_in_content_are_refused() -> None:
    message = error_of(minimal(steps=[step(body="Hi %%first_name%%, welcome.")]))
    assert message.startswith("welcome.yaml: steps[0].body: %%first_name%% would be shown as typed")
    assert "steps[0].subject: %%first_name%% would be shown as typed" in error_of(
        minimal(steps=[step(subject="For you, %%first_name%%")])
    )


def test_subject_and_preheader_limits_and_one_line() -> None:
    assert "steps[0].subject: the subject is 151 characters; keep it to 150" in error_of(
        minimal(steps=[step(subject="x" * 151)])
    )
    assert "steps[0].preheader: the preheader is 201 characters; keep it to 200" in error_of(
        minimal(steps=[step(preheader="y" * 201)])
    )
    d = parse_definition(minimal(steps=[step(subject="Two\nlines", preheader=None)]), source="x")
    assert (d.steps[0].subject, d.steps[0].preheader) == ("Two lines", "")


def test_a_body_that_makes_an_empty_email_is_refused_at_load() -> None:
    message = error_of(minimal(steps=[step(), step(body="# Only a heading\n")]))
    assert message == "welcome.yaml: steps[1].body: no text after the title \u201cOnly a heading\u201d"


def test_the_name_and_steps_are_required() -> None:
    message = error_of({"trigger": {"type": "manual"}})
    assert message.splitlines() == [
        "welcome.yaml: name: a sequence needs a name",
        "welcome.yaml: steps: a sequence needs at least one step",
    ]
    assert "welcome.yaml: steps: a sequence needs at least one step" in error_of(minimal(steps=[]))
    assert "welcome.yaml: trigger: a sequence needs a trigger" in error_of({"name": "x", "steps": [step()]})


def test_every_problem_is_reported_on_its_own_line() -> None:
    message = error_of(minimal(steps=[step(delay="soon", colour="red"), {"delay": 0, "body": "b"}]))
    assert message.splitlines() == [
        "welcome.yaml: steps[0].delay: 'soon' is not a duration like 2d, 12h, 30m",
        "welcome.yaml: steps[0].colour: unknown field (allowed: key, delay, subject, preheader, body, post, template, condition, translations)",
        "welcome.yaml: steps[1].subject: a step needs a subject",
    ]


# --- YAML in and out --------------------------------------------------------------------------------

def test_yaml_syntax_error_names_line_and_column() -> None:
    text = "name: Broken\ntrigger:\n  type: manual\nsteps:\n  - delay: 0\n    subject: [unclosed\n    body: x\n"
    with pytest.raises(InputError) as caught:
        load_yaml(text, source="broken.yaml")
    message = str(caught.value)
    assert message.startswith("broken.yaml: line 7, column 9: ")
    assert "line 6" in message  # where the unclosed bracket opened


def test_a_key_written_twice_in_yaml_is_an_error() -> None:
    text = "name: A\nname: B\ntrigger: {type: manual}\nsteps: [{delay: 0, subject: s, body: b}]\n"
    with pytest.raises(InputError, match=r"^twice.yaml: line 2, column 1: 'name' is written twice"):
        load_yaml(text, source="twice.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a list\n", "list.yaml: expected a sequence (name:, trigger:, steps: … lines), found a list"),
        ("just words\n", "list.yaml: expected a sequence (name:, trigger:, steps: … lines), found text"),
        ("", "list.yaml: the file is empty; a sequence needs name:, trigger: and steps:"),
        ("# only a comment\n", "list.yaml: the file is empty; a sequence needs name:, trigger: and steps:"),
    ],
)
def test_a_document_that_is_not_a_mapping(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(text, source="list.yaml")
    assert str(caught.value) == message


def test_round_trip_through_yaml_and_data() -> None:
    d = load_yaml(FULL_YAML, source="full.yaml")
    text = to_yaml(d)
    assert load_yaml(text, source="again.yaml") == d
    assert parse_definition(json.loads(json.dumps(to_data(d))), source="db") == d  # JSON-safe for a column
    assert to_yaml(load_yaml(text, source="again.yaml")) == text  # stable: a second export is identical


def test_a_pydantic_json_dump_reads_back() -> None:
    """``model_dump(mode="json")`` (what a JSON column would hold) writes compact durations."""
    d = load_yaml(FULL_YAML, source="full.yaml")
    dumped = d.model_dump(mode="json")
    assert [s["delay"] for s in dumped["steps"]] == ["0", "1d12h", "1w"]
    assert parse_definition(json.loads(json.dumps(dumped)), source="db") == d


def test_an_end_of_midnight_may_be_written_as_00_00() -> None:
    d = parse_definition(minimal(window={"start": "18:00", "end": "00:00"}), source="x")
    assert (d.window.end, d.window.end_minute) == ("24:00", 1440)


def test_yaml_output_is_readable() -> None:
    text = to_yaml(load_yaml(FULL_YAML, source="full.yaml"))
    assert "    delay: 1d12h\n" in text and "    delay: 1w\n" in text and "    delay: 0\n" in text
    assert "    body: |\n      # A heading of its own\n\n      A paragraph with *emphasis*" in text
    assert "  start: '07:30'\n  end: '24:00'\n" in text
    assert "key: step-2" in text  # derived keys are written out, so later edits keep them
    assert "template:" not in text  # the default is left out
    assert text.index("name:") < text.index("trigger:") < text.index("window:") < text.index("steps:")


def test_body_with_trailing_spaces_and_crlf_still_exports_as_a_block() -> None:
    d = parse_definition(minimal(steps=[step(body="\n\nLine one  \r\nLine two\t \r\n\n")]), source="x")
    assert d.steps[0].body == "Line one\nLine two\n"
    assert "body: |\n      Line one\n      Line two\n" in to_yaml(d)
    assert load_yaml(to_yaml(d), source="y") == d


def test_models_can_be_built_in_python_and_exported() -> None:
    d = SequenceDefinition.model_validate(minimal(steps=[step(key="only", delay=timedelta(hours=3))]))
    assert "delay: 3h" in to_yaml(d)
    assert load_yaml(to_yaml(d), source="x") == d


# --- step content and health warnings ----------------------------------------------------------------

def test_step_content_takes_the_heading_or_the_subject() -> None:
    d = load_yaml(FULL_YAML, source="full.yaml")
    with_heading = step_content(d.steps[0])
    assert with_heading.title == "A heading of its own"
    assert [b["type"] for b in with_heading.blocks] == ["paragraph", "list"]  # the heading became the title
    assert (with_heading.subject, with_heading.preheader) == ("First email", "A preheader.")
    without = step_content(d.steps[2])
    assert without.title == "Third" and without.blocks == [{"type": "paragraph", "html": "Plain text, no heading."}]
    with pytest.raises(ValueError, match="uses post 7"):
        step_content(d.steps[1])


def test_a_body_opening_with_a_rule_is_not_read_as_front_matter() -> None:
    d = parse_definition(minimal(steps=[step(subject="Ruled", body="---\ntitle: nope\n---\n\nReal text.")]), source="x")
    content = step_content(d.steps[0])
    assert content.title == "Ruled"
    assert "Real text." in json.dumps(content.blocks)


def test_health_words_in_subject_or_preheader_warn_naming_the_step() -> None:
    d = parse_definition(
        minimal(steps=[
            step(key="calm", subject="A calm hello", preheader="Nothing to see"),
            step(key="frank", subject="Ketamine questions", preheader="About your depression and therapy"),
        ]),
        source="x",
    )
    assert health_warnings(d) == [
        (
            "steps[1] (frank): the subject mentions 'ketamine'; it shows on lock screens and shared inboxes, "
            "so keep health details inside the email"
        ),
        (
            "steps[1] (frank): the preheader mentions 'depression', 'therapy'; it shows on lock screens and "
            "shared inboxes, so keep health details inside the email"
        ),
    ]
    assert health_warnings(parse_definition(minimal(), source="x")) == []


# --- the shipped sequences --------------------------------------------------------------------------

# Words that name a drug, a diagnosis or a crisis: kept out of the shipped bodies as well (a forwarded
# or screenshotted email should not say more than "a clinic"). General words ("treatment options")
# are allowed in bodies, never in subjects or preheaders (health_warnings checks those).
BODY_FORBIDDEN = (
    "ketamine", "esketamine", "spravato", "infusion", "depression", "depressed", "anxiety", "ptsd",
    "bipolar", "suicid", "self-harm", "trauma", "addiction", "diagnos", "psychiatr", "medication",
    "prescription", "antidepressant", "symptom", "disorder", "mental illness", "patient", "cure",
    "guarantee",
)


@pytest.fixture(scope="module")
def shipped() -> dict[str, SequenceDefinition]:
    return {d.name: d for d in shipped_definitions()}


def test_the_library_folder_holds_exactly_the_shipped_files() -> None:
    on_disk = sorted(p.name for p in library_folder().iterdir() if p.name.endswith((".yaml", ".yml")))
    assert on_disk == sorted(SHIPPED_FILES)


def test_welcome_sequence(shipped: dict[str, SequenceDefinition]) -> None:
    welcome = shipped["Welcome"]
    assert (welcome.trigger.type, welcome.trigger.list) == ("list_confirmed", "newsletter")
    assert len(welcome.steps) == 3
    assert [s.delay for s in welcome.steps] == [timedelta(0), timedelta(days=5), timedelta(days=9)]
    assert welcome.span <= timedelta(days=14)
    assert [g.type for g in welcome.goals] == ["unsubscribed"]
    assert welcome.reenroll is False


def test_consultation_follow_up_sequence(shipped: dict[str, SequenceDefinition]) -> None:
    follow_up = shipped["Consultation follow-up"]
    assert follow_up.trigger.type == "lead_created"
    assert len(follow_up.steps) == 5
    assert follow_up.steps[0].delay == timedelta(0)
    assert timedelta(days=14) <= follow_up.span <= timedelta(days=21)
    goals = {(g.type, g.stage) for g in follow_up.goals}
    assert ("booking", None) in goals  # ends the moment a booking is recorded
    assert {("lead_stage", "booked"), ("lead_stage", "attended"), ("lead_stage", "lost"), ("unsubscribed", None)} <= goals
    assert follow_up.reenroll is False
    assert follow_up.window.days == ["mon", "tue", "wed", "thu", "fri"]


def test_shipped_text_is_discreet_and_plain(shipped: dict[str, SequenceDefinition]) -> None:
    for d in shipped.values():
        assert health_warnings(d) == [], d.name
        assert all(s.body is not None and s.condition is None for s in d.steps)
        for s in d.steps:
            lowered = s.body.lower()
            assert "%%" not in s.body + s.subject + s.preheader, s.key
            assert not [w for w in BODY_FORBIDDEN if w in lowered], s.key
            assert "http" not in lowered and "](" not in s.body, s.key  # the layout adds the button
            assert s.preheader, s.key
            assert "988" not in s.subject + s.preheader
        bodies = " ".join(s.body for s in d.steps)
        assert "call or text 988" in bodies, d.name  # the crisis line, in the body only
        assert "a person on our team" in bodies.lower(), d.name  # replies reach a person


def test_shipped_files_round_trip(shipped: dict[str, SequenceDefinition]) -> None:
    for name in SHIPPED_FILES:
        d = load_yaml(shipped_yaml(name), source=name)
        assert load_yaml(to_yaml(d), source=name) == d
        assert copy.deepcopy(d) in shipped.values()


def test_shipped_steps_render_through_the_layout_and_pass_preflight(
    shipped: dict[str, SequenceDefinition], settings: Settings
) -> None:
    for d in shipped.values():
        for s in d.steps:
            email = render_email(step_content(s), settings)
            assert check_email(email, settings) == [], (d.name, s.key)  # no errors, not even warnings
            assert settings.cta_label in email.html and settings.booking_url in email.text
            assert s.subject in email.html  # <title>
            first_paragraph = s.body.split("\n\n")[1].split("\n")[0]
            assert first_paragraph.split()[0] in email.text


def test_aliases_and_deep_nesting_are_refused_not_expanded() -> None:
    """A dozen lines of anchors stand for billions of values; a sequence file is written by hand and
    needs none (the same rule as post front matter and segment files)."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
    with pytest.raises(InputError, match=r"bomb\.yaml: line 2, column \d+: aliases \(\*name\) are not supported"):
        load_yaml(bomb, source="bomb.yaml")
    with pytest.raises(InputError, match=r"deep\.yaml: line 1, column \d+: nested more than 50 levels deep"):
        load_yaml("name: " + "[" * 2000 + "]" * 2000, source="deep.yaml")
    with pytest.raises(InputError, match=r"when\.yaml: line 1, column \d+: cannot read this value"):
        load_yaml("name: !!timestamp 2024-13-45\n", source="when.yaml")
