"""parse() never returns a quietly partial object: what the end of the output cut is kept, defaulted or refused.

The rule: a value complete as far as the output goes is kept; a value the end of the output cut (a
scalar mid-token, a list or map that was never closed) is left to its default when its field is optional
and is a ParseError naming the field when it is required. A container that was never closed is cut even
if its last item was complete: more items could have followed. An object of a model is the one
exception: its fields are named by the schema, so the fields never written are the missing ones, and
they must be optional.
"""

from __future__ import annotations

import json
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from twelvefactor.errors import ParseError
from twelvefactor.parsing import parse


class Config(BaseModel):
    name: str
    labels: dict[str, int]


class Settings(BaseModel):
    name: str
    labels: dict[str, int] = {}
    tags: list[str] = []


class Point(BaseModel):
    x: int
    y: int


class Shape(BaseModel):
    name: str
    origin: Point | None = None
    corners: list[Point] = []


class Bill(BaseModel):
    total: int


class Cat(BaseModel):
    name: str
    lives: int = 9


class Dog(BaseModel):
    name: str
    bark: str


class Snippet(BaseModel):
    language: str = "python"
    code: str


class Send(BaseModel):
    intent: Literal["send_email"] = "send_email"
    to: list[str]
    subject: str


def refused(text: str, schema: object) -> str:
    with pytest.raises(ParseError) as info:
        parse(text, schema)
    message = str(info.value)
    assert len(message) < 600 and "\n" not in message
    return message


# --- lists: never a shorter list ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2, 3",  # "3" could have been "35"
        "[1, 2, 3,",  # more items could follow
        "[1, 2, 3 ",
        "[1, 2, 3\n",
        "The numbers are [1, 2",
        "```json\n[1, 2, 3\n```",  # a fence closed around a list that never was
    ],
)
def test_a_truncated_list_is_an_error_never_a_shorter_list(text: str) -> None:
    assert "truncated" in refused(text, list[int])


def test_a_truncated_list_in_a_required_field_is_an_error_naming_it() -> None:
    message = refused('{"intent": "send_email", "subject": "hi", "to": ["a@x.io", "b@x.io"', Send)
    assert "truncated" in message and "'to'" in message
    message = refused('{"intent": "send_email", "to": ["a@x.io", "b@x.io",', Send)
    assert "truncated" in message and "'to'" in message


def test_a_truncated_list_in_an_optional_field_is_left_to_its_default() -> None:
    assert parse('{"name": "box", "tags": ["a", "b"', Settings) == Settings(name="box")
    assert parse('{"name": "box", "corners": [{"x": 1, "y": 2}, {"x": 3', Shape) == Shape(name="box")


def test_a_closed_list_before_the_cut_is_kept() -> None:
    text = '{"subject": "hi", "to": ["a@x.io", "b@x.io"], "intent": "send_email"'
    assert parse(text, Send) == Send(to=["a@x.io", "b@x.io"], subject="hi")


# --- strings and maps: never an emptier object ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "b',  # a string cut mid-token
        '{"a": "b", "c": "d"',  # a map never closed: more entries could follow
        '{"a": "b",',
        '{"a":',
    ],
)
def test_a_truncated_map_is_an_error_never_an_emptier_map(text: str) -> None:
    assert "truncated" in refused(text, dict[str, str])


def test_a_nested_map_cut_after_a_complete_entry_is_an_error_naming_its_field() -> None:
    message = refused('{"name": "web", "labels": {"a": 1, "b": 2,', Config)
    assert "truncated" in message and "'labels'" in message
    message = refused('{"name": "web", "labels": {"a": 1', Config)
    assert "truncated" in message and "'labels'" in message
    assert "truncated" in refused('{"web": {"a": 1, "b": 2}, "db": {"c": 3,', dict[str, dict[str, int]])


def test_a_nested_map_cut_in_an_optional_field_is_left_to_its_default() -> None:
    assert parse('{"name": "web", "labels": {"a": 1, "b": 2,', Settings) == Settings(name="web")


def test_a_nested_model_cut_keeps_its_complete_fields_when_the_rest_is_optional() -> None:
    # A model's fields are named by the schema: the ones never written must be optional, like the top level.
    assert parse('{"name": "box", "origin": {"x": 1, "y": 2', Shape) == Shape(name="box")  # "2" may be "25"
    complete = Shape(name="box", origin=Point(x=1, y=2))
    assert parse('{"name": "box", "origin": {"x": 1, "y": 2,\n', Shape) == complete
    assert parse('{"name": "box", "origin": {"x": 1, "y": 2}', Shape) == complete


def test_a_number_right_before_a_final_comma_may_go_on() -> None:
    # Thousands separators are read in objects ("total": 12,111), so "y": 2, at the very end may be 2,500.
    assert parse('{"name": "box", "origin": {"x": 1, "y": 2,', Shape) == Shape(name="box")
    assert "'total'" in refused('{"total": 12,', Bill)
    assert parse('{"total": 1234,', Bill) == Bill(total=1234)  # four digits: no thousands group


def test_a_string_cut_in_a_required_field_is_an_error_naming_it() -> None:
    message = refused('{"language": "python", "code": "def f():\\n    return', Snippet)
    assert "truncated" in message and "'code'" in message


def test_a_string_inside_json_in_a_string_that_is_cut_is_not_read_as_json() -> None:
    # The field's string is whole, the JSON it holds is not: it stays a string, which a list refuses.
    message = refused('{"intent": "send_email", "subject": "hi", "to": "[\\"a@x.io\\", \\"b@x"}', Send)
    assert "'to'" in message


# --- unquoted values and numbers people write: where they may go on --------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"language": "sql", "code": SELECT 1',  # an unquoted value at the very end
        '{"language": "sql", "code": SELECT ',  # the next word may have been cut
        '{"language": "sql", "code": SELECT\t',
    ],
)
def test_unquoted_words_at_the_very_end_are_cut(text: str) -> None:
    assert "'code'" in refused(text, Snippet)


def test_unquoted_words_ended_by_a_line_break_or_a_comma_are_complete() -> None:
    assert parse('{"language": "sql", "code": SELECT 1\n', Snippet).code == "SELECT 1"
    assert parse('{"code": SELECT 1, "language": sql', Snippet) == Snippet(code="SELECT 1")


def test_a_number_with_thousands_separators_at_the_very_end_is_cut() -> None:
    assert "'total'" in refused('{"total": 12,345', Bill)  # may go on as 12,345,678
    assert parse('{"total": 12,345 ', Bill) == Bill(total=12345)
    assert parse('{"total": 12 ', Bill) == Bill(total=12)  # "12 apples" would be 12 too


# --- unions: the cut may hide what tells members apart ------------------------------------------


def test_a_truncated_object_for_an_untagged_union_is_refused_rather_than_guessed() -> None:
    # Complete, this would be a Dog; with "bark" cut it would read as a Cat. Never guess.
    assert "truncated" in refused('{"name": "Rex", "bark": "lou', Cat | Dog)


# --- Python triple-quoted strings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"code": """def f():\n    return 1"""}', "def f():\n    return 1"),
        ("{'code': '''def f():\n    return 1'''}", "def f():\n    return 1"),
        ('{"code": """print("hi")"""}', 'print("hi")'),
        ('{"code": """a = \'x\'\nb = "y" """}', "a = 'x'\nb = \"y\" "),
        ('{"language": "sql", "code": """SELECT 1""",}', "SELECT 1"),
        ('{"code": """"""}', ""),
    ],
)
def test_python_triple_quoted_strings_parse_to_their_content(text: str, code: str) -> None:
    assert parse(text, Snippet).code == code


def test_a_truncated_triple_quoted_string_is_cut() -> None:
    assert "'code'" in refused('{"code": """def f():\n    return', Snippet)


# --- what a str target gets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"hello"', "hello"),  # one JSON string: its content
        ("hello", "hello"),
        ('  "hello world"  \n', "hello world"),
        ('"He said \\"hi\\""', 'He said "hi"'),
        ("'hello'", "hello"),
        ('"hello" she said', '"hello" she said'),  # not one string: the text
        ('{"answer": "hello"}', '{"answer": "hello"}'),  # an object: its text as written
        ("[1, 2]", "[1, 2]"),
        ('Here it is: {"a": 1}', 'Here it is: {"a": 1}'),
        ("<think>Say hi.</think>\nhello", "hello"),
        ("```\nhello\n```", "hello"),
        ("```text\nhello\nworld\n```", "hello\nworld"),
        ("def f():\n    return {'a': 1}", "def f():\n    return {'a': 1}"),
    ],
)
def test_a_str_target_is_the_text_of_the_reply(text: str, expected: str) -> None:
    assert parse(text, str) == expected


def test_an_empty_reply_is_not_a_str() -> None:
    assert "empty" in refused("  \n", str)


# --- properties: every cut of a real answer --------------------------------------------------------

CUTS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Leaf(BaseModel):
    name: str
    size: int = 0


class Tree(BaseModel):
    title: str
    leaves: list[Leaf]
    tags: list[str] = []
    counts: dict[str, int] = {}
    leaf: Leaf | None = None
    note: str | None = None


WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
LEAVES = st.builds(Leaf, name=WORDS, size=st.integers(-(10**6), 10**6))
TREES = st.builds(
    Tree,
    title=WORDS,
    leaves=st.lists(LEAVES, max_size=3),
    tags=st.lists(WORDS, max_size=3),
    counts=st.dictionaries(WORDS, st.integers(-(10**4), 10**4), max_size=3),
    leaf=st.none() | LEAVES,
    note=st.none() | WORDS,
)


def assert_kept_or_defaulted(result: BaseModel, original: BaseModel) -> None:
    """Every value is the original one, or -- for a field the cut reached -- that field's default."""
    for name, info in type(original).model_fields.items():
        got, want = getattr(result, name), getattr(original, name)
        if got == want:
            continue
        assert not info.is_required(), f"required {name!r} changed: {got!r} != {want!r}"
        if isinstance(got, BaseModel) and isinstance(want, BaseModel):
            assert_kept_or_defaulted(got, want)  # a nested model keeps what it had, defaults the rest
        else:
            assert got == info.default, f"{name!r} is neither the original nor the default: {got!r}"


@CUTS
@given(tree=TREES, data=st.data())
def test_a_cut_answer_keeps_original_values_or_defaults_never_a_partial_one(tree: Tree, data: st.DataObject) -> None:
    for text in (tree.model_dump_json(), tree.model_dump_json(indent=2), repr(tree.model_dump())):
        cut = data.draw(st.integers(1, len(text) - 1), label="cut")
        try:
            result = parse(text[:cut], Tree)
        except ParseError:
            continue
        assert_kept_or_defaulted(result, tree)


@CUTS
@given(items=st.lists(st.integers(), min_size=1, max_size=8), data=st.data())
def test_every_cut_of_a_list_is_an_error(items: list[int], data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([str(items), str(items).replace(" ", ""), "```json\n" + str(items)]))
    cut = data.draw(st.integers(1, len(text) - 1), label="cut")
    with pytest.raises(ParseError):
        parse(text[:cut], list[int])


@CUTS
@given(mapping=st.dictionaries(WORDS, st.integers(), min_size=1, max_size=5), data=st.data())
def test_every_cut_of_a_map_is_an_error(mapping: dict[str, int], data: st.DataObject) -> None:
    text = json.dumps(mapping, ensure_ascii=False)
    cut = data.draw(st.integers(1, len(text) - 1), label="cut")
    with pytest.raises(ParseError):
        parse(text[:cut], dict[str, int])
