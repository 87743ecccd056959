"""Segments: every condition, nesting, validation with paths, saved segments, the CLI, and the same
contacts on SQLite and PostgreSQL for every definition."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.database import Database, upgrade
from subscribers import segments
from subscribers.consent import Proof, request_subscription, unsubscribe
from subscribers.contacts import upsert_contact
from subscribers.errors import InputError, NotFound
from subscribers.leads import STAGES
from subscribers.lists import ensure_list
from subscribers.models import Contact, Lead
from subscribers.suppression import suppress
from tests.conftest import postgres_schema

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


# name: tags, custom fields, {list: (status, confirmed_at)}, lead stage, created, tz, source, status
PEOPLE: dict[str, dict[str, Any]] = {
    "ann": dict(tags=["VIP", "blog"], fields={"clinic": "LA", "age": 34, "score": 7.5, "member": True,
                                               "note": "Prefers Mornings", "since": "2024-03-01"},
                lists={"newsletter": ("confirmed", "2026-02-10"), "events": ("pending", None)},
                stage="new", created="2026-01-05T10:00", tz="America/Los_Angeles", source="form"),
    "bob": dict(tags=["blog"], fields={"clinic": "NYC", "age": 61, "score": 9, "member": False},
                lists={"newsletter": ("confirmed", "2026-06-01")},
                stage="contacted", created="2026-03-01T00:00", tz="America/New_York", source="import"),
    "cat": dict(tags=[], fields={"clinic": "la", "age": "34", "visits": 0},
                lists={"newsletter": ("pending", None)},
                stage="booked", created="2025-12-31T23:30", tz="Europe/London", source="api"),
    "dan": dict(tags=["vip"], fields={"clinic": "London", "age": 45.0, "interests": ["sleep", "mood"]},
                lists={"newsletter": ("unsubscribed", "2026-02-20"), "events": ("confirmed", "2026-04-01")},
                stage="lost", created="2026-02-15T08:00", tz="Europe/London", source="import"),
    "eve": dict(tags=["blog", "clinic news"], fields={"clinic": "École Santé", "age": 29},
                lists={"newsletter": ("confirmed", "2026-07-01")},
                stage=None, created="2026-05-05T12:00", tz="Europe/Paris", source="admin", status="bounced",
                suppressed=True),
    "fay": dict(tags=[], fields={}, lists={}, stage="attended", created="2026-08-01T09:00", tz="UTC",
                source="lead"),
    "gus": dict(tags=["vip"], fields={"clinic": None, "age": None},
                lists={"events": ("confirmed", "2026-09-09")},
                stage=None, created="2026-11-01T15:00", tz="America/Los_Angeles", source="form",
                status="complained"),
}
EVERYONE = set(PEOPLE)


def populate(db: Database) -> dict[str, int]:
    """The population above, built through the audience services (leads as rows: see the brief)."""
    ids: dict[str, int] = {}
    with db.session() as s:
        for name, p in PEOPLE.items():
            contact = upsert_contact(s, f"{name}@example.org", default_timezone="UTC", source=p["source"],
                                     timezone=p["tz"], custom_fields=p["fields"] or None, tags=p["tags"]).contact
            contact.created_at = at(p["created"])
            for slug, (status, confirmed_at) in p["lists"].items():
                mailing_list = ensure_list(s, slug)
                sub = request_subscription(s, contact, mailing_list, Proof("admin"),
                                           confirmed=status != "pending").subscription
                assert sub is not None
                if confirmed_at:
                    sub.confirmed_at = at(confirmed_at)
                if status == "unsubscribed":
                    unsubscribe(s, contact, mailing_list, Proof("email_link"))
            if p["stage"]:
                s.add(Lead(contact_id=contact.id, source="web_form", stage=p["stage"]))
            if p.get("suppressed"):
                suppress(s, contact.email, "hard_bounce")
            contact.status = p.get("status", "active")
            s.flush()
            ids[name] = contact.id
    return ids


@dataclass
class Population:
    db: Database
    ids: dict[str, int]

    def names(self, definition: dict[str, Any]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        with self.db.session() as s:
            found = s.scalars(select(Contact.id).where(segments.compile_filter(definition, now=NOW)))
            return {by_id[i] for i in found}


def sqlite_population_in(folder: Path) -> Population:
    """The population in a new SQLite database under ``folder``."""
    db = Database(f"sqlite:///{folder / 'segments.db'}")
    upgrade(db.engine)
    return Population(db, populate(db))


@contextmanager
def postgres_population() -> Iterator[Population]:
    """The population in a PostgreSQL schema of its own: rows other test modules add stay out of the
    expected sets."""
    with postgres_schema() as url:
        db = Database(url)
        try:
            upgrade(db.engine)
            yield Population(db, populate(db))
        finally:
            db.engine.dispose()


@pytest.fixture(scope="module")
def sqlite_population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return sqlite_population_in(tmp_path_factory.mktemp("segments"))


@pytest.fixture(scope="module")
def pg_population() -> Iterator[Population]:
    with postgres_population() as population:
        yield population


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def population(request: pytest.FixtureRequest) -> Population:
    return request.getfixturevalue("pg_population" if request.param == "postgresql" else "sqlite_population")


def field(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": key, "op": op} if value is None else {"field": key, "op": op, "value": value}


CASES = [
    # lists and subscription states
    ({"list": "newsletter"}, {"ann", "bob", "eve"}),
    ({"list": "newsletter", "status": "pending"}, {"cat"}),
    ({"list": "newsletter", "status": ["pending", "unsubscribed"]}, {"cat", "dan"}),
    ({"list": "events"}, {"dan", "gus"}),
    ({"list": "events", "status": "pending"}, {"ann"}),
    # tags (cleaned like stored tags; a contact with two matching tags counts once)
    ({"tag": "VIP"}, {"ann", "dan", "gus"}),
    ({"tag": "clinic news"}, {"eve"}),
    ({"tags_any": ["blog", "vip"]}, {"ann", "bob", "dan", "eve", "gus"}),
    ({"tags_all": ["blog", "vip"]}, {"ann"}),
    # custom fields: text
    (field("clinic", "eq", "LA"), {"ann"}),
    (field("clinic", "ne", "LA"), {"bob", "cat", "dan", "eve"}),  # present and different; not fay/gus
    (field("clinic", "lt", "M"), {"ann", "dan"}),  # code-point order: "la" and "École" sort after "M"
    (field("clinic", "gte", "a"), {"cat", "eve"}),
    (field("since", "lt", "2025-01-01"), {"ann"}),  # ISO dates kept as text compare as dates
    (field("note", "contains", "MORNING"), {"ann"}),  # ASCII letters ignore case
    (field("clinic", "contains", "ÉCOLE"), {"eve"}),  # only ASCII letters fold: É stays É
    (field("clinic", "contains", "école"), set()),
    (field("age", "eq", "34"), {"cat"}),  # text "34" is not the number 34
    # custom fields: numbers compare numerically, with numbers only
    (field("age", "eq", 34), {"ann"}),
    (field("age", "eq", 45), {"dan"}),  # 45.0 stored
    (field("age", "gt", 40), {"bob", "dan"}),
    (field("age", "gte", 34), {"ann", "bob", "dan"}),
    (field("age", "lt", 34), {"eve"}),
    (field("age", "lte", 34.0), {"ann", "eve"}),
    (field("age", "ne", 34), {"bob", "dan", "eve"}),
    (field("score", "gt", 8), {"bob"}),
    (field("score", "lt", 8), {"ann"}),
    (field("visits", "eq", 0), {"cat"}),
    # custom fields: booleans, presence
    (field("member", "eq", True), {"ann"}),
    (field("member", "eq", False), {"bob"}),
    (field("member", "ne", True), {"bob"}),
    (field("clinic", "exists"), {"ann", "bob", "cat", "dan", "eve"}),  # gus's null is not a value
    (field("clinic", "exists", False), {"fay", "gus"}),
    (field("interests", "exists"), {"dan"}),
    # "not" is the exact complement, also where fields are missing or of another kind
    ({"not": field("clinic", "eq", "LA")}, EVERYONE - {"ann"}),
    ({"not": field("age", "gt", 40)}, EVERYONE - {"bob", "dan"}),
    ({"not": field("note", "contains", "morning")}, EVERYONE - {"ann"}),
    ({"not": field("clinic", "lt", "M")}, EVERYONE - {"ann", "dan"}),
    # leads
    ({"lead_stage": ["new", "contacted"]}, {"ann", "bob"}),
    ({"lead_stage": "lost"}, {"dan"}),
    ({"not": {"lead_stage": list(STAGES)}}, {"eve", "gus"}),
    # created: dates are whole UTC days, both ends included; date-times are instants
    ({"created": {"after": "2026-01-01", "before": "2026-12-31"}}, EVERYONE - {"cat"}),
    ({"created": {"before": "2025-12-31"}}, {"cat"}),
    ({"created": {"after": "2026-01-01T00:00:00+01:00", "before": "2026-01-06"}}, {"cat", "ann"}),
    ({"created": {"before": "2025-12-31T23:30:00"}}, set()),  # naive is UTC; before is exclusive
    ({"created": {"before": "2025-12-31T23:30:01"}}, {"cat"}),
    ({"created": {"within_days": 30}}, {"gus"}),
    ({"created": {"older_than_days": 300}}, {"ann", "cat"}),
    # confirmed: current subscribers who confirmed in the window (dan left, so he is out)
    ({"confirmed": {"list": "newsletter", "after": "2026-02-01"}}, {"ann", "bob", "eve"}),
    ({"confirmed": {"list": "newsletter", "after": "2026-02-01", "before": "2026-06-30"}}, {"ann", "bob"}),
    ({"confirmed": {"within_days": 90}}, {"gus"}),
    # contact columns
    ({"status": "active"}, {"ann", "bob", "cat", "dan", "fay"}),
    ({"status": ["bounced", "complained"]}, {"eve", "gus"}),
    ({"timezone": "Europe/London"}, {"cat", "dan"}),
    ({"timezone": ["UTC", "Europe/Paris"]}, {"eve", "fay"}),
    ({"source": "import"}, {"bob", "dan"}),
    # nesting
    ({"all": [{"list": "newsletter"}, {"any": [{"tag": "vip"}, field("age", "gt", 60)]}]}, {"ann", "bob"}),
    ({"any": [{"lead_stage": "booked"}, {"all": [{"tag": "vip"}, {"not": {"list": "newsletter"}}]}]},
     {"cat", "dan", "gus"}),
    ({"not": {"any": [{"tag": "blog"}, {"timezone": "UTC"}]}}, {"cat", "dan", "gus"}),
    ({"all": [{"source": "form"}, {"not": {"status": "active"}}, {"created": {"within_days": 60}}]}, {"gus"}),
]


@pytest.mark.parametrize("definition, expected", CASES, ids=[json.dumps(c[0], ensure_ascii=False) for c in CASES])
def test_segment_matches_exactly_these_contacts(population: Population, definition: dict[str, Any],
                                                expected: set[str]) -> None:
    """Run on SQLite always and on PostgreSQL with the postgres marker: one expectation for both."""
    assert population.names(definition) == expected
    with population.db.session() as s:
        assert segments.count(s, definition, mailable_only=False, now=NOW) == len(expected)


@pytest.mark.postgres
def test_sqlite_and_postgresql_return_the_same_contact_ids(sqlite_population: Population,
                                                           pg_population: Population) -> None:
    assert sqlite_population.ids == pg_population.ids  # same build order, same ids: compare ids directly

    def ids(population: Population, definition: dict[str, Any]) -> list[int]:
        with population.db.session() as s:
            return [c.id for c in segments.contacts(s, definition, mailable_only=False, limit=100, now=NOW)]

    for definition, _ in CASES:
        assert ids(sqlite_population, definition) == ids(pg_population, definition), definition


def test_mailable_only_leaves_out_suppressed_addresses(population: Population) -> None:
    with population.db.session() as s:
        assert segments.count(s, {"list": "newsletter"}) == 2  # eve is suppressed
        assert segments.count(s, {"list": "newsletter"}, mailable_only=False) == 3
        preview = segments.contacts(s, {"list": "newsletter"}, limit=1)
        assert [c.email for c in preview] == ["ann@example.org"]
        assert [c.email for c in segments.contacts(s, {"tags_any": ["blog", "vip"]}, limit=10)] == [
            "ann@example.org", "bob@example.org", "dan@example.org", "gus@example.org"]


def test_count_is_one_select_count_query(sqlite_population: Population) -> None:
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = sqlite_population.db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with sqlite_population.db.session() as s:
            definition = {"all": [{"list": "newsletter"}, {"tags_any": ["blog", "vip"]},
                                  {"not": {"lead_stage": "lost"}}, field("age", "gte", 30)]}
            assert segments.count(s, definition) == 2  # ann and bob (eve suppressed, dan lost)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    counts = [q for q in statements if "count(*)" in q.lower()]
    assert len(counts) == 1 and len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == 1
    # Semi-joins only (SQLite: id IN (subquery)), never a JOIN that could count a contact twice.
    assert counts[0].count("contacts.id IN (SELECT") == 3 and " JOIN " not in counts[0].upper()


def test_related_rows_are_semi_joins_chosen_per_dialect() -> None:
    """PostgreSQL plans EXISTS as (anti-)semi-joins and never falls back to re-scanning an IN list;
    SQLite runs IN (subquery) once instead of probing per contact. Both are tested by the table above."""
    from sqlalchemy import func
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.exc import CompileError

    where = segments.compile_filter({"all": [{"list": "newsletter"}, {"not": {"tag": "vip"}}]})
    query = select(func.count()).where(where)  # contacts is found without select_from
    pg, lite = str(query.compile(dialect=postgresql.dialect())), str(query.compile(dialect=sqlite.dialect()))
    assert "FROM contacts" in pg and "FROM contacts" in lite
    assert pg.count("EXISTS (SELECT 1") == 2 and "NOT (EXISTS" in pg and " IN (SELECT" not in pg
    assert lite.count("contacts.id IN (SELECT") == 2 and "NOT (contacts.id IN" in lite and "= 1" not in lite
    with pytest.raises(CompileError, match="not mysql"):
        str(select(Contact.id).where(segments.compile_filter(field("clinic", "eq", "LA"))).compile(
            dialect=mysql.dialect()))


def test_engagement_tables_are_the_sending_sides_own() -> None:
    """Segments name the ledger's and the events' tables without importing ``newsletter``: each column
    they read must exist on the real table, with the same kind of value."""
    from newsletter.models import Delivery, Event

    for light, model in ((segments._DELIVERIES, Delivery), (segments._EVENTS, Event)):
        real = model.__table__
        assert light.name == real.name
        for column in light.c:
            assert column.name in real.c, f"{real.name}.{column.name}"
            assert column.type.python_type is real.c[column.name].type.python_type, f"{real.name}.{column.name}"


def test_saved_segments_create_replace_list_count_delete(sqlite_population: Population) -> None:
    with sqlite_population.db.session() as s:
        saved = segments.save_segment(s, "vip-la", {"all": [{"tag": "vip"}, field("clinic", "eq", "LA")]},
                                      "VIP patients of the LA clinic")
        assert saved.definition == {"all": [{"tag": "vip"}, {"field": "clinic", "op": "eq", "value": "LA"}]}
        assert segments.count(s, "vip-la") == 1
        replaced = segments.save_segment(s, "vip-la", {"tag": "VIP"})
        assert replaced.id == saved.id and replaced.description == "VIP patients of the LA clinic"
        assert replaced.definition == {"tag": "vip"}  # stored cleaned
        assert segments.count(s, "vip-la") == 3
        segments.save_segment(s, "blog", {"tag": "blog"}, "")
        assert [x.name for x in segments.list_segments(s)] == ["blog", "vip-la"]
        with s.begin_nested():
            assert s.scalar(select(Contact.id).where(segments.segment_filter(s, "blog")).order_by(Contact.id)) == \
                sqlite_population.ids["ann"]
        segments.delete_segment(s, "blog")
        segments.delete_segment(s, "vip-la")
        with pytest.raises(NotFound, match="there is no segment 'blog'"):
            segments.get_segment(s, "blog")
        with pytest.raises(NotFound):
            segments.delete_segment(s, "blog")
        with pytest.raises(NotFound):
            segments.count(s, "blog")


def test_saving_refuses_unknown_lists_and_bad_names(sqlite_population: Population) -> None:
    with sqlite_population.db.session() as s:
        with pytest.raises(InputError) as caught:
            segments.save_segment(s, "typo", {"any": [{"tag": "vip"}, {"not": {"list": "newsleter"}}]})
        assert str(caught.value) == ("segment 'typo': any[1].not.list: there is no list 'newsleter' "
                                     "(lists: events, newsletter)")
        with pytest.raises(InputError, match=r"confirmed\.list: there is no list 'nope'"):
            segments.save_segment(s, "typo", {"confirmed": {"list": "nope", "within_days": 3}})
        with pytest.raises(InputError, match="segment name 'VIP LA'"):
            segments.save_segment(s, "VIP LA", {"tag": "vip"})
        assert segments.find_segment(s, "typo") is None


OPS = "eq, ne, lt, lte, gt, gte, contains, exists"
INVALID = [
    ({"all": [{"tag": "vip"}, {"field": "clinic", "op": "like", "value": "LA"}]},
     f"segment 'vip-la': all[1].field: op 'like' is not one of {OPS}"),
    ({"not": {"never_opened": False}}, "segment 'vip-la': not.never_opened: write never_opened: true"),
    ({"tag": "vip", "colour": "red"}, "segment 'vip-la': colour: unknown key beside 'tag' (allowed beside it: nothing)"),
    ({"colour": "red"}, "segment 'vip-la': unknown condition 'colour'; expected one of all, any, not, list,"),
    ({"tag": "vip", "list": "newsletter"}, "one condition per mapping, found 'tag' and 'list'"),
    ({"all": []}, "segment 'vip-la': all: needs a non-empty list of conditions"),
    ({"all": {"tag": "vip"}}, "all: needs a non-empty list of conditions"),
    (["tag", "vip"], "segment 'vip-la': a condition is a mapping such as {'tag': 'vip'}, not a list"),
    ({"all": [{"list": "newsletter", "status": "gone"}]},
     "all[0].status: 'gone' is not one of pending, confirmed, unsubscribed"),
    ({"list": "News Letter"}, "list: list 'News Letter': a list's slug is lower-case"),
    ({"lead_stage": ["new", "won"]}, "lead_stage[1]: 'won' is not one of new, contacted, booked, attended, lost"),
    ({"status": "gone"}, "status: 'gone' is not one of active, unsubscribed, bounced, complained"),
    ({"source": "fax"}, "source: 'fax' is not one of form, import, api, admin, lead"),
    ({"timezone": "Mars/Base"}, "timezone: 'Mars/Base' is not an IANA time zone"),
    ({"tags_all": []}, "tags_all: needs a non-empty list of tags"),
    ({"tags_any": ["vip", 3]}, "tags_any[1]: a tag is text, not a number"),
    ({"created": {"after": "last tuesday"}}, "created.after: 'last tuesday' is not an ISO date"),
    ({"created": {"after": "2026-12-31", "before": "2026-01-01"}},
     "created: after 2026-12-31 is not earlier than before 2026-01-01: nobody can match"),
    ({"created": {"within_days": 0}}, "created.within_days: a whole number of days from 1 to 36500, not 0"),
    ({"created": {"within_days": True}}, "created.within_days: a whole number of days"),
    ({"created": {"since": "2026-01-01"}}, "created.since: unknown key; expected after, before, within_days"),
    ({"created": {}}, "created: needs at least one of after, before, within_days, older_than_days"),
    ({"confirmed": {"list": "newsletter"}}, "confirmed: needs at least one of after, before"),
    ({"field": "clinic", "op": "gt", "value": True}, "field: op 'gt' does not apply to true/false; use eq or ne"),
    ({"field": "age", "op": "contains", "value": 3}, "field: op 'contains' takes text, not a number"),
    ({"field": "age", "op": "eq"}, "field: op 'eq' needs a value"),
    ({"field": "age", "op": "eq", "value": None}, "field: value must be text, a number or true/false, not nothing"),
    ({"field": "age", "op": "eq", "value": [1, 2]}, "field: value must be text, a number or true/false, not a list"),
    ({"field": "age", "op": "exists", "value": "yes"}, "field: op 'exists' takes value true or false"),
    ({"field": 'a"b', "op": "eq", "value": 1}, "field: field name 'a\"b': use letters, digits"),
    ({"field": "age", "op": "eq", "value": 1, "unit": "years"}, "unit: unknown key beside 'field' (allowed beside it: op, value)"),
    ({"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {
        "tag": "x"}}}}}}}}}}}}}}, "nested more than 12 levels deep"),
]


@pytest.mark.parametrize("definition, message", INVALID, ids=[m[:40] for _, m in INVALID])
def test_validation_names_the_bad_node(definition: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        segments.validate(definition, name="vip-la")
    assert message in str(caught.value)
    assert str(caught.value).startswith("segment 'vip-la': ")
    with pytest.raises(InputError):  # compile validates first: nothing unchecked reaches SQL
        segments.compile_filter(definition)


def test_validate_returns_a_cleaned_json_able_copy() -> None:
    from datetime import date

    raw = {"all": [{"tags_all": ["VIP", " Blog  Post ", "vip"]},
                   {"created": {"after": date(2026, 1, 1), "before": datetime(2026, 6, 1, 9, 30)}},
                   {"field": "clinic", "value": "LA"}]}
    cleaned = segments.validate(raw)
    assert cleaned == {"all": [{"tags_all": ["blog post", "vip"]},
                               {"created": {"after": "2026-01-01", "before": "2026-06-01T09:30:00"}},
                               {"field": "clinic", "op": "eq", "value": "LA"}]}
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert raw["all"][0] == {"tags_all": ["VIP", " Blog  Post ", "vip"]}  # the input is not changed


# Found by fuzzing (tests/test_fuzz_segments.py): each raised OverflowError, UnicodeEncodeError or a
# PostgreSQL DataError from the database instead of a validation error naming the part.
FUZZ_FOUND = [
    ({"created": {"before": "9999-12-31"}}, "created.before: '9999-12-31' is too close to the year 1 or 9999"),
    ({"created": {"after": "0001-01-01T00:00:00+14:00"}}, "created.after: '0001-01-01T00:00:00+14:00' is too close"),
    ({"field": "age", "op": "gt", "value": 10**30}, "field: value 1000000000000000000000000000000 is out of range"),
    ({"field": "age", "op": "eq", "value": 2**63}, "field: value 9223372036854775808 is out of range"),
    ({"tag": "\ud800"}, "tag: '\\ud800' holds a character that text cannot (NUL or an unpaired surrogate)"),
    ({"tag": "a\x00b"}, "tag: 'a\\x00b' holds a character that text cannot"),
    ({"field": "note", "op": "contains", "value": "\ud800"}, "field: value '\\ud800' holds a character"),
    ({"field": "note", "op": "eq", "value": "a\x00"}, "field: value 'a\\x00' holds a character"),
    ({"field": "clinic\n", "op": "eq", "value": "LA"}, "field: field name 'clinic\\n': use letters"),
    ({"list": "newsletter\n"}, "list: list 'newsletter\\n': a list's slug is lower-case"),
]


@pytest.mark.parametrize("definition, message", FUZZ_FOUND, ids=[m[:40] for _, m in FUZZ_FOUND])
def test_values_the_database_cannot_take_are_validation_errors(population: Population, definition: Any,
                                                                message: str) -> None:
    with pytest.raises(InputError) as caught:
        with population.db.session() as s:
            segments.count(s, definition, now=NOW)
    assert str(caught.value).startswith(message)


def test_segment_names_end_where_they_seem_to() -> None:
    with pytest.raises(InputError, match=r"^segment name 'vip\\n': use lower-case"):
        segments.check_name("vip\n")


# --- the CLI ---------------------------------------------------------------------------------------

runner = CliRunner()


def run(*args: str, code: int = 0, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def test_cli_round_trip(settings: Settings, db: Database, tmp_path: Path) -> None:
    populate(db)
    yaml_file = tmp_path / "vip.yaml"
    yaml_file.write_text("all:\n  - tag: vip\n  - created:\n      after: 2026-01-01\n", encoding="utf-8")
    assert "Saved segment 'vip-2026': 3 mailable contacts." in run(
        "segments", "save", "vip-2026", "--file", str(yaml_file), "--description", "VIPs who joined this year")
    assert "Saved segment 'news': 2 mailable contacts." in run(
        "segments", "save", "news", "--json", '{"list": "newsletter"}')
    json_file = tmp_path / "leads.json"
    json_file.write_text(json.dumps({"lead_stage": ["new", "contacted", "booked"]}), encoding="utf-8")
    run("segments", "save", "warm", "--file", str(json_file))
    assert "Replaced segment 'warm': 1 mailable contact." in run(
        "segments", "save", "warm", "--file", "-", input="lead_stage: booked\n")

    listing = json.loads(run("segments", "list", "--json"))
    assert [(row["name"], row["count"]) for row in listing] == [("news", 2), ("vip-2026", 3), ("warm", 1)]
    assert listing[1]["definition"] == {"all": [{"tag": "vip"}, {"created": {"after": "2026-01-01"}}]}
    table = run("segments", "list")
    assert "vip-2026" in table and "VIPs who joined this year" in table

    shown = json.loads(run("segments", "show", "news", "--json"))
    assert shown["count"] == 2 and shown["definition"] == {"list": "newsletter"}
    assert [row["email"] for row in shown["preview"]] == ["ann@example.org", "bob@example.org"]
    text_view = run("segments", "show", "vip-2026")
    assert "tag: vip" in text_view and "dan@example.org" in text_view and "3 mailable contacts" in text_view

    assert run("segments", "count", "news").strip() == "2"
    assert run("segments", "count", "news", "--include-suppressed").strip() == "3"
    assert "Deleted segment 'warm'." in run("segments", "delete", "warm")
    assert "there is no segment 'warm'" in run("segments", "count", "warm", code=1)


def test_cli_reports_bad_definitions_with_their_path(settings: Settings, db: Database, tmp_path: Path) -> None:
    out = run("segments", "save", "vip-la", "--json",
              '{"all": [{"tag": "vip"}, {"field": "clinic", "op": "like", "value": "LA"}]}', code=2)
    assert f"segment 'vip-la': all[1].field: op 'like' is not one of {OPS}" in " ".join(out.split())
    assert "Saved segment 'x'" in run("segments", "save", "x", "--json", '{"opened": {"within_days": 30}}')
    assert "--json: not valid JSON" in run("segments", "save", "x", "--json", "{tag: vip", code=2)
    broken = tmp_path / "broken.yaml"
    broken.write_text("all:\n  - tag: vip\n - list: x\n", encoding="utf-8")
    assert "not valid YAML at line 3" in run("segments", "save", "x", "--file", str(broken), code=2)
    assert "cannot read" in run("segments", "save", "x", "--file", str(tmp_path / "missing.yaml"), code=2)
    assert "one of them" in run("segments", "save", "x", code=2)
    assert "there is no segment 'nope'" in run("segments", "show", "nope", code=1)
    assert [s["name"] for s in json.loads(run("segments", "list", "--json"))] == ["x"]  # only the valid one saved


def test_cli_refuses_unreadable_definition_text_in_one_line(settings: Settings, db: Database, tmp_path: Path) -> None:
    """Found by fuzzing ``load_definition``: deep brackets overflowed the JSON decoder's recursion
    (a traceback), a control character gave a two-line YAML error, aliases expanded unchecked, and a
    file that is not UTF-8 was reported without its name."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1990 + "]" * 1990, encoding="utf-8")
    out = run("segments", "save", "x", "--file", str(deep), code=2)
    assert f"{deep}: nested too deeply" in out and out.count("\n") == 1
    assert "--json: nested too deeply" in run("segments", "save", "x", "--json", "[" * 1990 + "]" * 1990, code=2)
    control = tmp_path / "control.yaml"
    control.write_text("\x1f", encoding="utf-8")
    out = run("segments", "save", "x", "--file", str(control), code=2)
    assert "not valid YAML" in out and "unacceptable character #x001f" in out and out.count("\n") == 1
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("a0: &a0 [{tag: x}, {tag: y}]\na1: &a1 [*a0, *a0, *a0]\nany: *a1\n", encoding="utf-8")
    assert "not valid YAML at line 2 column 10: aliases (*name) are not supported" in run(
        "segments", "save", "x", "--file", str(aliases), code=2)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("tag: caf\u00e9\n".encode("latin-1"))
    assert f"{latin}: not UTF-8 text" in run("segments", "save", "x", "--file", str(latin), code=2)
    assert json.loads(run("segments", "list", "--json")) == []
