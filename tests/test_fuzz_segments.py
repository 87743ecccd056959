"""Fuzzing segment definitions: arbitrary JSON/YAML-shaped trees (wrong types, unknown keys, deep
nesting, huge numbers, odd strings) either fail validation with a clear one-line InputError that
names the path of the bad part, or compile to SQL that runs on SQLite -- and on PostgreSQL, with the
same contacts, when NEWSLETTER_TEST_POSTGRES_URL is set. Never a traceback.

The definition text itself (``segments save --json/--file``) is fuzzed too: JSON or YAML that is
broken, deeply nested or full of aliases is refused as clearly as a bad definition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from newsletter.cli.segments import load_definition
from subscribers import segments
from subscribers.contacts import SOURCES
from subscribers.errors import InputError
from subscribers.leads import STAGES
from subscribers.states import ContactStatus, SubscriptionStatus
from tests.fuzzing import fuzz_settings, time_limit
from tests.test_segments import NOW, Population, postgres_population, sqlite_population_in

LISTS = ["newsletter", "events", "no-such-list", "newsletter\n"]
FIELDS = ["clinic", "age", "score", "member", "note", "since", "visits", "interests", "missing", "a.b", "x y",
          "clinic\n"]
TAGS = ["vip", "VIP", " Blog ", "clinic  news", "\u00e9cole", "a" * 64, "%", "_", "'", "\"", "\\", "\U0001f600"]
ZONES = ["UTC", "Europe/London", "America/Los_Angeles", "Etc/GMT-14", "Asia/Kathmandu"]
ODD_TEXT = ["", " ", "\x00", "a\x00b", "\ud800", "\udfff x", "\u202e", "\n", "%", "_", "'; DROP TABLE contacts;--",
            "\\", "\"", "$.x", "\u00c9cole Sant\u00e9", "LA", "la", "34", "2024-03-01", "\U0001f600", "a" * 500]
INSTANTS = ["2026-01-01", "2025-12-31T23:30:00", "2026-01-01T00:00:00+01:00", "2026-06-01T09:30:00Z",
            "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59", "2026-02-29", "2024-02-29", "20260101", "2026-W01-1", " 2026-01-01 "]
HUGE_NUMBERS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, -(10**400), 1e308, -1e308, 5e-324, -0.0,
                float("inf"), float("nan"), 1.7976931348623157e308, 2**53 + 1]
KINDS = list(segments.CONDITIONS)


# --- strategies -----------------------------------------------------------------------------------

texts = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=30))
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(HUGE_NUMBERS))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.sampled_from(KINDS + ["op", "value", "status"]))


def one_or_many(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(values), st.lists(st.sampled_from(values), min_size=1, max_size=3))


@st.composite
def windows(draw: st.DrawFn, extra: bool = False) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(segments.WINDOW_KEYS), min_size=1, max_size=3, unique=True))
    window: dict[str, Any] = {}
    for key in keys:
        if key in ("after", "before"):
            window[key] = draw(st.sampled_from(INSTANTS))
        else:
            window[key] = draw(st.one_of(st.integers(1, segments.MAX_DAYS), st.sampled_from([1, segments.MAX_DAYS])))
    if extra and draw(st.booleans()):
        window["list"] = draw(st.sampled_from(LISTS))
    return window


@st.composite
def field_tests(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(segments.FIELD_OPS))
    if op == "exists":
        return {"field": key, "op": op, **draw(st.sampled_from([{}, {"value": True}, {"value": False}]))}
    if op == "contains":
        value: Any = draw(texts.filter(bool))
    elif op in ("eq", "ne"):
        value = draw(st.one_of(st.booleans(), numbers, texts))
    else:
        value = draw(st.one_of(numbers, texts))
    return {"field": key, "op": op, "value": value}


leaves = st.one_of(
    st.builds(lambda slug, status: {"list": slug, **status}, st.sampled_from(LISTS),
              st.one_of(st.just({}), one_or_many([s.value for s in SubscriptionStatus]).map(lambda s: {"status": s}))),
    st.sampled_from(TAGS).map(lambda t: {"tag": t}),
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=4).map(lambda t: {"tags_any": t}),
    st.lists(st.sampled_from(TAGS), min_size=1, max_size=4).map(lambda t: {"tags_all": t}),
    one_or_many(list(STAGES)).map(lambda s: {"lead_stage": s}),
    one_or_many([s.value for s in ContactStatus]).map(lambda s: {"status": s}),
    one_or_many(ZONES).map(lambda z: {"timezone": z}),
    one_or_many(list(SOURCES)).map(lambda s: {"source": s}),
    windows().map(lambda w: {"created": w}),
    windows(extra=True).map(lambda w: {"confirmed": w}),
    st.sampled_from(["engaged", "opened", "clicked"]).flatmap(lambda k: windows().map(lambda w: {k: w})),
    st.just({"never_opened": True}),
    field_tests(),
)


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=4).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    )


# Shaped like a definition; most validate, some trip over an odd value (a date that overflows, a
# huge number, a NUL byte): exactly the inputs that must not reach the database unchecked.
definitions = st.recursive(leaves, _combine, max_leaves=12)

# Anything JSON or YAML can hold, with the definition's own words as keys now and then.
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KINDS + ["op", "value", "status", "list"]),
                                                      st.text(max_size=8)), inner, max_size=4)),
    max_leaves=25,
)


@st.composite
def mangled(draw: st.DrawFn) -> Any:
    """A definition with one part swapped for garbage, at any depth."""
    definition = draw(definitions)
    sites = list(_nodes(definition, ""))
    _path, node = draw(st.sampled_from(sites))
    kind = next(iter(node))
    node[draw(st.sampled_from([kind, kind, "op", "value", "status", "bogus"]))] = draw(garbage)
    return definition


@st.composite
def planted(draw: st.DrawFn) -> tuple[Any, str]:
    """(a definition with exactly one bad part, the path of that part)."""
    definition = draw(definitions.filter(_valid))
    sites = list(_nodes(definition, ""))
    path, node = draw(st.sampled_from(sites))
    kind = next(k for k in node if k in segments.CONDITIONS and not any(
        k in segments.CONDITIONS[o] for o in node if o in segments.CONDITIONS))
    how = draw(st.sampled_from(["value", "key", "node"]))
    if how == "value":  # a value of a shape no condition takes
        node[kind] = draw(st.sampled_from([{"nested": [1]}, 3.5, None]))
        return definition, _at(path, kind)
    if how == "key":
        node["bogus"] = draw(scalars)
        return definition, _at(path, "bogus")
    bad = draw(st.one_of(st.none(), numbers, texts, st.lists(scalars, max_size=2)))
    if not path:
        return bad, ""
    parent, last = _parent_of(definition, path)
    parent[last] = bad
    return definition, path


def _valid(definition: Any) -> bool:
    try:
        segments.validate(definition)
    except InputError:
        return False
    return True


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for kind in ("all", "any"):
        for i, child in enumerate(node.get(kind, [])):
            yield from _nodes(child, f"{_at(path, kind)}[{i}]")
    if "not" in node:
        yield from _nodes(node["not"], _at(path, "not"))


def _parent_of(root: Any, path: str) -> tuple[Any, Any]:
    steps = [int(s[1:-1]) if s.startswith("[") else s for s in re.findall(r"\[\d+\]|[^.\[\]]+", path)]
    node = root
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


# --- checks -----------------------------------------------------------------------------------------

NAME = "fuzzed"


@pytest.fixture(scope="module")
def sqlite_people(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return sqlite_population_in(tmp_path_factory.mktemp("fuzz-segments"))


@pytest.fixture(scope="module")
def postgres_people() -> Iterator[Population]:
    with postgres_population() as population:
        yield population


def validated(definition: Any) -> dict[str, Any] | None:
    """The cleaned definition, or None after a clear error (one line, naming the segment)."""
    try:
        with time_limit():
            cleaned = segments.validate(definition, name=NAME)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"segment {NAME!r}: ") and "\n" not in message, f"unclear: {message!r}"
        return None
    assert json.loads(json.dumps(cleaned)) == cleaned, "the cleaned definition is not plain JSON"
    assert segments.validate(cleaned) == cleaned, "cleaning twice changes it"
    for path, node in _nodes(cleaned, ""):  # names are what the messages promise: no stray characters
        for name in (node.get("field"), node.get("list"), (node.get("confirmed") or {}).get("list")):
            assert name is None or (name.isprintable() and name == name.strip()), f"{path}: name {name!r}"
    return cleaned


def matching_ids(people: Population, definition: dict[str, Any]) -> list[int]:
    with time_limit(), people.db.session() as session:
        found = [c.id for c in segments.contacts(session, definition, mailable_only=False, limit=100, now=NOW)]
        assert segments.count(session, definition, now=NOW) <= len(found)
    return found


# --- the properties ---------------------------------------------------------------------------------


@pytest.mark.fuzz
@fuzz_settings
@given(definition=st.one_of(definitions, mangled(), garbage))
def test_any_definition_is_refused_clearly_or_runs_on_sqlite(definition: Any, sqlite_people: Population) -> None:
    cleaned = validated(definition)
    if cleaned is not None:
        matching_ids(sqlite_people, cleaned)


@pytest.mark.fuzz
@pytest.mark.postgres
@fuzz_settings
@given(definition=st.one_of(definitions, definitions, mangled()))
def test_any_definition_gives_the_same_contacts_on_postgresql(definition: Any, sqlite_people: Population,
                                                              postgres_people: Population) -> None:
    assert sqlite_people.ids == postgres_people.ids  # built in the same order: ids compare directly
    cleaned = validated(definition)
    if cleaned is not None:
        assert matching_ids(sqlite_people, cleaned) == matching_ids(postgres_people, cleaned), cleaned


@pytest.mark.fuzz
@fuzz_settings
@given(case=planted())
def test_the_error_names_the_path_of_the_bad_part(case: tuple[Any, str]) -> None:
    definition, path = case
    with pytest.raises(InputError) as caught:
        segments.validate(definition, name=NAME)
    message = str(caught.value).removeprefix(f"segment {NAME!r}: ")
    if path:  # (a bad root has no path to name)
        assert re.match(re.escape(path) + r"(: |\.|\[)", message), f"{message!r} does not name {path!r}"


@st.composite
def definition_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(text, suffix): JSON or YAML of a definition, broken, deeply nested or full of aliases."""
    value = draw(st.one_of(definitions, garbage))
    kind = draw(st.sampled_from(["json", "yaml", "broken", "deep-json", "deep-yaml", "aliases", "text"]))
    if kind == "json":
        return json.dumps(value), draw(st.sampled_from([".json", ".yaml"]))
    if kind == "yaml":
        return yaml.safe_dump(value, allow_unicode=draw(st.booleans())), ".yaml"
    if kind == "broken":
        text = json.dumps(value)
        return text[: draw(st.integers(0, len(text)))], draw(st.sampled_from([".json", ".yaml"]))
    depth = draw(st.integers(100, 100_000))
    if kind == "deep-json":
        return "[" * depth + "]" * depth, draw(st.sampled_from([".json", ".yaml"]))
    if kind == "deep-yaml":
        return "all:\n" + "".join("  " * n + "- not:\n" for n in range(1, min(depth, 120))) + "  tag: x\n", ".yaml"
    if kind == "aliases":
        lines = ["a0: &a0 [{tag: x}, {tag: y}, {tag: z}]"]
        lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, draw(st.integers(2, 9)))]
        return "\n".join(lines) + f"\nany: *a{len(lines) - 1}\n", ".yaml"
    return draw(st.text(max_size=200)), ".yaml"


@pytest.mark.fuzz
@fuzz_settings
@given(case=definition_texts())
def test_definition_text_is_read_or_refused_clearly(case: tuple[str, str], tmp_path_factory: pytest.TempPathFactory,
                                                    sqlite_people: Population) -> None:
    text, suffix = case
    path = tmp_path_factory.mktemp("definition") / f"segment{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for source in ({"file": path, "text": None}, {"file": None, "text": text}):
        try:
            with time_limit():
                loaded = load_definition(**source)
        except InputError as exc:
            assert "\n" not in str(exc), f"unclear: {exc}"
            continue
        cleaned = validated(loaded)
        if cleaned is not None:
            matching_ids(sqlite_people, cleaned)
