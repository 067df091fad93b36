"""Properties of parse(): any text gives a valid instance or a ParseError; real answers round-trip."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter

from twelvefactor.errors import ParseError
from twelvefactor.parsing import parse


class Add(BaseModel):
    intent: Literal["add"]
    a: float
    b: float


class Divide(BaseModel):
    intent: Literal["divide"]
    a: float
    b: float


class Ask(BaseModel):
    intent: Literal["request_human_input"]
    question: str


class Done(BaseModel):
    intent: Literal["done_for_now"]
    message: str
    note: str | None = None


Step = Annotated[Add | Divide | Ask | Done, Field(discriminator="intent")]
PlainStep = Add | Divide | Ask | Done
SCHEMAS: list[Any] = [Step, PlainStep, Done, list[int]]

# Modest budgets: the suite runs on small CI machines.
PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_valid_or_parse_error(text: str, schema: Any) -> None:
    try:
        result = parse(text, schema)
    except ParseError as err:
        message = str(err)
        assert len(message) < 600 and "\n" not in message
        return
    adapter = TypeAdapter(schema)
    if isinstance(result, BaseModel):
        assert adapter.validate_python(result.model_dump()) == result
    else:
        assert adapter.validate_python(result) == result


# fmt: off
FRAGMENTS = st.sampled_from(
    [
        "{", "}", "[", "]", '"', "'", ",", ":", " ", "\n", "\\", '\\"', "\u201c", "\u201d",
        '"intent"', "intent", '"add"', "'add'", '"ADD"', '"divide"', '"done_for_now"', '"request_human_input"',
        '"a"', "a", '"b"', '"message"', '"question"', '"note"', '"name"', '"arguments"', '"tool"', '"add":',
        "1", "2.5", "-3", "1e5", "1e999", '"7"', "true", "True", "None", "null", "NaN", '"hi"', "'it's'",
        "```json\n", "```", "<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "//", "/*", "*/", "#",
        "Sure! Here is the JSON:", "[[[[", "{{{{",
    ]
)
# fmt: on
JSONISH = st.lists(FRAGMENTS, max_size=40).map("".join)


@PROPERTY
@given(text=st.text(max_size=300))
def test_arbitrary_text_gives_a_valid_instance_or_a_parse_error(text: str) -> None:
    for schema in SCHEMAS:
        assert_valid_or_parse_error(text, schema)


@PROPERTY
@given(text=JSONISH)
def test_json_like_fragments_give_a_valid_instance_or_a_parse_error(text: str) -> None:
    for schema in SCHEMAS:
        assert_valid_or_parse_error(text, schema)


NUMBERS = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6).map(float)
TEXTS = st.text(max_size=40)
STEPS = st.one_of(
    st.builds(Add, intent=st.just("add"), a=NUMBERS, b=NUMBERS),
    st.builds(Divide, intent=st.just("divide"), a=NUMBERS, b=NUMBERS),
    st.builds(Ask, intent=st.just("request_human_input"), question=TEXTS),
    st.builds(Done, intent=st.just("done_for_now"), message=TEXTS, note=st.none() | TEXTS),
)


def variants(step: BaseModel) -> list[str]:
    data = step.model_dump()
    compact = json.dumps(data)
    pretty = json.dumps(data, indent=2)
    return [
        compact,
        pretty,
        f"Sure! Here is the JSON:\n```json\n{pretty}\n```\nLet me know if you need anything else.",
        f"I'll take the next step now.\n\n{compact}\n\nThat should do it.",
        repr(data),  # a Python dict: single quotes, True/None
        f"```python\n{data!r}\n```",
        compact[:-1] + ",}",  # trailing comma
        pretty[:-1] + ",\n}",
        f"<think>Let me decide what to do.</think>\n{compact}",
        json.dumps(compact),  # the answer as a JSON string
        f"[{compact}]",
    ]


@ROUND_TRIP
@given(step=STEPS)
def test_valid_steps_round_trip_through_what_models_write(step: BaseModel) -> None:
    for text in variants(step):
        assert parse(text, Step) == step, text
        assert parse(text, PlainStep) == step, text


@ROUND_TRIP
@given(step=STEPS, data=st.data())
def test_truncation_never_invents_or_alters_a_value(step: BaseModel, data: st.DataObject) -> None:
    text = json.dumps(step.model_dump())
    cut = data.draw(st.integers(1, len(text)), label="cut")
    try:
        result = parse(text[:cut], Step)
    except ParseError:
        return
    # Only an optional member may be lost to the cut; every kept value is the original one.
    assert result == step or (isinstance(step, Done) and result == step.model_copy(update={"note": None}))


REQUIRED = {"add": "b", "divide": "a", "request_human_input": "question", "done_for_now": "message"}


@ROUND_TRIP
@given(step=STEPS, other=STEPS, valid_first=st.booleans())
def test_a_second_step_is_never_dropped_even_when_it_is_invalid(
    step: BaseModel, other: BaseModel, valid_first: bool
) -> None:
    intent, other_intent = step.model_dump()["intent"], other.model_dump()["intent"]
    assume(intent != other_intent)
    broken = other.model_dump()
    del broken[REQUIRED[other_intent]]
    valid, invalid = json.dumps(step.model_dump()), json.dumps(broken)
    first, second = (valid, invalid) if valid_first else (invalid, valid)
    text = f"I will do this:\n{first}\nand then this:\n{second}"
    for schema in (Step, PlainStep):
        with pytest.raises(ParseError) as info:
            parse(text, schema)
        message = str(info.value)
        assert "2 next steps" in message and f"({intent}; {other_intent}, invalid" in message, message
        assert len(message) < 600


@ROUND_TRIP
@given(step=STEPS, data=st.data())
def test_a_cut_off_copy_of_the_answer_is_not_another_step(step: BaseModel, data: st.DataObject) -> None:
    text = json.dumps(step.model_dump())
    cut = data.draw(st.integers(1, len(text)), label="cut")
    try:
        result = parse(f"{text}\n{text[:cut]}", Step)
    except ParseError:
        # A copy cut inside Done's optional note is itself a valid, different Done: two answers.
        assert isinstance(step, Done) and step.note is not None
        return
    assert result == step
