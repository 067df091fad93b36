"""parse_partial(): the best view of an output still streaming, marked incomplete, never an answer."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import twelvefactor
from twelvefactor.errors import ParseError
from twelvefactor.parsing import Partial, parse, parse_partial


class Add(BaseModel):
    intent: Literal["add"]
    a: float
    b: float


class Done(BaseModel):
    intent: Literal["done_for_now"]
    message: str
    note: str | None = None


class Color(Enum):
    RED = "red"
    DARK_BLUE = "dark_blue"


class Point(BaseModel):
    x: int
    y: int


class Paint(BaseModel):
    intent: Literal["paint"] = "paint"
    color: Color
    points: list[Point] = []
    tags: list[str] = []


Step = Annotated[Add | Done, Field(discriminator="intent")]
DONE = Done(intent="done_for_now", message="all done", note="abc")


def test_it_is_exported_at_the_top() -> None:
    assert twelvefactor.parse_partial is parse_partial
    assert "parse_partial" in twelvefactor.__all__


def test_a_whole_answer_is_complete_and_is_what_parse_returns() -> None:
    text = 'Sure:\n```json\n{"intent": "done_for_now", "message": "all done", "note": "abc"}\n```'
    partial = parse_partial(text, Step)
    assert partial == Partial(DONE, True, [])
    assert partial.value == parse(text, Step)


@pytest.mark.parametrize(
    ("text", "value", "missing"),
    [
        ("", None, ["intent"]),
        ("<think>The user wants a sum", None, ["intent"]),
        ("Let me think about which tool", None, ["intent"]),
        ('{"inte', None, ["intent"]),  # nothing read yet
        ('{"intent": "ad', {"intent": "ad"}, ["intent"]),  # an unknown tag shows as written so far
        ('{"intent": "add", "a": 1', {"intent": "add"}, ["a", "b"]),  # "1" may still be "15"
        ('{"intent": "add", "a": 1, "b": 2', {"intent": "add", "a": 1}, ["b"]),
        (
            '{"intent": "done_for_now", "message": "I added 1 and',
            {"intent": "done_for_now", "message": "I added 1 and"},  # a string shows its text so far
            ["message"],
        ),
        ('{"name": "add", "arguments": {"a": 1, "b": 2', {"intent": "add", "a": 1}, ["b"]),
        ("```json\n[{'intent': 'ADD', a: 5.0,", {"intent": "add", "a": 5.0}, ["b"]),
        ("```json\n[{'intent': 'ADD', a: 5,", {"intent": "add"}, ["a", "b"]),  # 5, may go on as 5,000
    ],
)
def test_an_output_cut_short_is_a_view_with_its_missing_fields(text: str, value: Any, missing: list[str]) -> None:
    assert parse_partial(text, Step) == Partial(value, False, missing)


def test_a_cut_off_optional_field_is_still_incomplete_though_parse_accepts_it() -> None:
    text = '{"intent": "done_for_now", "message": "all done", "note": "ab'
    assert parse(text, Step) == Done(intent="done_for_now", message="all done")
    assert parse_partial(text, Step) == Partial(
        {"intent": "done_for_now", "message": "all done", "note": "ab"}, False, []
    )


def test_lists_enums_and_nested_models_in_the_view() -> None:
    text = '{"color": "Dark Blue", "tags": ["a", "b"], "points": [{"x": 1, "y": 2}, {"x": 3, "y": 4'
    partial = parse_partial(text, Paint)
    assert partial == Partial(
        {"color": "dark_blue", "tags": ["a", "b"], "points": [{"x": 1, "y": 2}, {"x": 3}]}, False, []
    )
    assert parse_partial("[1, 2, 3", list[int]) == Partial([1, 2], False, [])


def test_scalars_and_text_are_never_complete_since_nothing_closes_them() -> None:
    assert parse_partial("The answer is TW", Color) == Partial(None, False, [])
    assert parse_partial("The answer is dark blue", Color) == Partial("dark_blue", False, [])
    assert parse_partial("Hello, wor", str) == Partial("Hello, wor", False, [])
    assert parse_partial('Here: {"a": "b', str) == Partial('Here: {"a": "b', False, [])  # text, as parse() reads it
    assert parse_partial('{"answer": "red"}', Color) == Partial(Color.RED, True, [])


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1}',  # a whole answer, and wrong: more output cannot fix it
        '{"intent": "add", "a": 1, "b": 2} {"intent": "done_for_now", "message": "x"}',
        '{"intent": "add", "a": 1, "b": 2}\n{"intent": "done_for_now", "message": "still wri',
    ],
)
def test_an_output_already_wrong_raises(text: str) -> None:
    with pytest.raises(ParseError):
        parse_partial(text, Step)


def test_drafts_in_an_open_reasoning_block_are_not_read_yet() -> None:
    text = '<think>Maybe {"intent": "add", "a": 1, "b": 2}? Or {"intent": "done_for_now", "message": "x"}'
    assert parse_partial(text, Step) == Partial(None, False, ["intent"])


def test_a_string_cut_inside_an_escape_shows_the_text_before_it() -> None:
    for cut in ('{"intent": "done_for_now", "message": "caf\\u00', '{"intent": "done_for_now", "message": "caf\\'):
        assert parse_partial(cut, Step).value == {"intent": "done_for_now", "message": "caf"}
    emoji = '{"intent": "done_for_now", "message": "hi \\ud83d'
    assert parse_partial(emoji, Step).value == {"intent": "done_for_now", "message": "hi "}


# --- property: every prefix of a stream ---------------------------------------------------------

STREAMS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXTS = st.text(max_size=30)
NUMBERS = st.integers(-(10**6), 10**6)
STEPS = st.one_of(
    st.builds(Add, intent=st.just("add"), a=NUMBERS, b=NUMBERS),
    st.builds(Done, intent=st.just("done_for_now"), message=TEXTS, note=st.none() | TEXTS),
)


def assert_agrees(view: Any, original: Any) -> None:
    """Everything a view shows is in the original: equal, or a string's beginning."""
    if isinstance(view, dict):
        for key, item in view.items():
            assert key in original
            assert_agrees(item, original[key])
    elif isinstance(view, str) and isinstance(original, str):
        assert original.startswith(view)
    else:
        assert view == original


@STREAMS
@given(step=STEPS, pretty=st.booleans())
def test_every_prefix_of_a_streamed_answer_is_a_view_that_agrees_with_it(step: BaseModel, pretty: bool) -> None:
    data = step.model_dump(mode="json")
    text = json.dumps(data, indent=2 if pretty else None)
    for end in range(len(text) + 1):
        partial = parse_partial(text[:end], Step)
        if partial.complete:
            assert end == len(text) and partial.value == step
            continue
        assert not isinstance(partial.value, BaseModel)  # never something to act on
        if partial.value is not None:
            assert_agrees(partial.value, data)
