"""parse(): raw model text -> one validated next step, or a ParseError fit for the context window."""

from __future__ import annotations

import json
import random
import string
import time
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal, Union

import pytest
from pydantic import BaseModel, Field, TypeAdapter, create_model

from twelvefactor.errors import ParseError, UserError
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
PlainStep = Add | Divide | Ask | Done  # no discriminator: pydantic's smart union, our tie check

ADD = Add(intent="add", a=1, b=2)
DONE = Done(intent="done_for_now", message="all done")
INTENTS = "allowed intents: add, divide, request_human_input, done_for_now"


class Deploy(BaseModel):
    """A tool declared the way twelvefactor.Tool subclasses are: the intent has a default."""

    intent: Literal["deploy_backend"] = "deploy_backend"
    tag: str
    environment: Literal["staging", "production"]


class Color(StrEnum):
    RED = "red"
    DARK_BLUE = "dark_blue"


class Priority(Enum):
    LOW = 1
    HIGH = 2


class Paint(BaseModel):
    intent: Literal["paint"] = "paint"
    color: Color
    priority: Priority = Priority.LOW
    tags: list[str] = []
    sizes: list[int] = []
    labels: dict[str, int] = {}


class Point(BaseModel):
    x: int
    y: int


class Plot(BaseModel):
    intent: Literal["plot"] = "plot"
    points: list[Point]
    origin: Point | None = None


def parse_error(text: str, schema: Any = Step) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(text, schema)
    assert type(info.value) is ParseError
    return info.value


def assert_compact(message: str) -> None:
    """What every ParseError message must be: short, one line, no pydantic boilerplate."""
    assert len(message) < 600
    assert "\n" not in message
    assert "errors.pydantic.dev" not in message and "For further information" not in message
    assert "Traceback" not in message


# --- what real models emit ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1, "b": 2}',
        '\n\n  {"intent":"add","a":1,"b":2}  \n',
        'Sure! Here is the JSON:\n```json\n{\n  "intent": "add",\n  "a": 1,\n  "b": 2\n}\n```\nLet me know if you need anything else.',
        '```\n{"intent": "add", "a": 1, "b": 2}\n```',
        '```JSON\n{"intent": "add", "a": 1, "b": 2}\n```',
        "```python\n{'intent': 'add', 'a': 1, 'b': 2}\n```",
        'To add the numbers I will call the add tool: `{"intent": "add", "a": 1, "b": 2}`',
        'I\'ll add them.\n\n{"intent": "add", "a": 1, "b": 2}\n\nThis returns the sum of 1 and 2.',
        '**Next step:**\n```json\n{"intent": "add", "a": 1, "b": 2}\n```',
    ],
    ids=[
        "plain",
        "whitespace",
        "llama-fence",
        "bare-fence",
        "upper-fence",
        "python-fence",
        "inline-code",
        "prose",
        "markdown",
    ],
)
def test_fences_and_prose_around_the_object(text: str) -> None:
    assert parse(text, Step) == ADD


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1, "b": 2,}',
        '{\n  "intent": "add",\n  "a": 1,\n  "b": 2,\n}',
        '[{"intent": "add", "a": 1, "b": 2,},]',
    ],
)
def test_trailing_commas(text: str) -> None:
    assert parse(text, Step) == ADD


@pytest.mark.parametrize(
    "text",
    [
        "{'intent': 'add', 'a': 1, 'b': 2}",
        "{'intent': \"add\", 'a': 1, \"b\": 2}",
    ],
)
def test_single_quoted_strings(text: str) -> None:
    assert parse(text, Step) == ADD


def test_single_quoted_string_with_an_apostrophe_inside() -> None:
    text = "{'intent': 'done_for_now', 'message': 'it's done, the sum is 3'}"
    assert parse(text, Step) == Done(intent="done_for_now", message="it's done, the sum is 3")


@pytest.mark.parametrize(
    "text",
    [
        '{\n  // the user asked for a sum\n  "intent": "add",\n  "a": 1, // first\n  "b": 2\n}',
        '{\n  /* the user asked\n     for a sum */\n  "intent": "add", "a": 1, "b": 2 /* done */\n}',
        '{\n  # pick the add tool\n  "intent": "add",\n  "a": 1,  # first operand\n  "b": 2\n}',
    ],
    ids=["line", "block", "hash"],
)
def test_comments(text: str) -> None:
    assert parse(text, Step) == ADD


def test_comment_markers_inside_strings_are_text() -> None:
    text = '{"intent": "done_for_now", "message": "see http://x.io/a#b // not a comment /* nor this */"}'
    assert parse(text, Step).message == "see http://x.io/a#b // not a comment /* nor this */"


@pytest.mark.parametrize(
    "text",
    [
        '{intent: "add", a: 1, b: 2}',
        "{intent: 'add', a: 1, b: 2}",
        "{intent: add, a: 1, b: 2}",
    ],
)
def test_unquoted_keys_and_bare_words(text: str) -> None:
    assert parse(text, Step) == ADD


class Flags(BaseModel):
    intent: Literal["set_flags"] = "set_flags"
    dry_run: bool
    force: bool
    reason: str | None


@pytest.mark.parametrize(
    "text",
    [
        "{'intent': 'set_flags', 'dry_run': True, 'force': False, 'reason': None}",
        '{"intent": "set_flags", "dry_run": true, "force": false, "reason": null}',
        '{"intent": "set_flags", "dry_run": True, "force": false, "reason": None,}',
    ],
)
def test_python_and_json_literals(text: str) -> None:
    assert parse(text, Flags) == Flags(dry_run=True, force=False, reason=None)


def test_numbers_as_strings() -> None:
    assert parse('{"intent": "add", "a": "1", "b": " 2.0 "}', Step) == ADD
    assert parse('{"intent": "paint", "color": "red", "sizes": ["3", "4"]}', Paint).sizes == [3, 4]


@pytest.mark.parametrize("intent", ["ADD", "Add", "aDd", " add "])
def test_wrong_case_intent(intent: str) -> None:
    assert parse(json.dumps({"intent": intent, "a": 1, "b": 2}), Step) == ADD
    assert parse(json.dumps({"intent": intent, "a": 1, "b": 2}), PlainStep) == ADD


def test_wrong_case_literals_and_enums() -> None:
    text = '{"intent": "Deploy_Backend", "tag": "v1.2", "environment": "PRODUCTION"}'
    assert parse(text, Deploy) == Deploy(tag="v1.2", environment="production")
    painted = parse('{"intent": "PAINT", "color": "Dark Blue", "priority": "high"}', Paint)
    assert painted.color is Color.DARK_BLUE and painted.priority is Priority.HIGH


def test_wrong_case_keys() -> None:
    assert parse('{"Intent": "add", "A": 1, "B": 2}', Step) == ADD


def test_intent_with_a_default_may_be_left_out_of_a_single_tool() -> None:
    assert parse('{"tag": "v2", "environment": "staging"}', Deploy) == Deploy(tag="v2", environment="staging")


# --- truncation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "done_for_now", "message": "all done", "note": "the sum of 1 and 2 is',
        '{"intent": "done_for_now", "message": "all done", "note": {"detail": [1, 2',
        '{"intent": "done_for_now", "message": "all done", "note":',
        '{"intent": "done_for_now", "message": "all done", "no',
        '{"intent": "done_for_now", "message": "all done",',
        '{"intent": "done_for_now", "message": "all done"',
        '```json\n{"intent": "done_for_now", "message": "all done", "note": "abc',
        '```json\n{"intent": "done_for_now", "message": "all done", "note": "abc\n```',
    ],
)
def test_truncated_object_with_only_an_optional_field_cut_is_accepted(text: str) -> None:
    assert parse(text, Step) == DONE


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"intent": "done_for_now", "message": "I added 1 and 2 and the res', "message"),
        ('{"intent": "add", "a": 1, "b": 2', "b"),  # "2" could have been "25"
        ('{"intent": "add", "a": 1, "b": 2.', "b"),
        ('{"intent": "add", "a": 1, "b"', "b"),
        ('Here you go:\n```json\n{"intent": "request_human_input", "question": "Which', "question"),
    ],
)
def test_truncated_required_field_is_an_error_naming_it(text: str, field: str) -> None:
    err = parse_error(text)
    assert "truncated" in str(err) and repr(field) in str(err)
    assert_compact(str(err))


def test_number_followed_by_a_delimiter_is_complete() -> None:
    assert parse('{"intent": "add", "a": 1, "b": 2 ', Step) == ADD
    assert parse('{"intent": "add", "a": 1, "b": 2\n', Step) == ADD


# --- reasoning and tags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '<think>\nThe user wants 1 + 2. I could divide, {"intent": "divide", "a": 1, "b": 2}, but no.\n</think>\n{"intent": "add", "a": 1, "b": 2}',
        '<thinking>Use add.</thinking>\n\n```json\n{"intent": "add", "a": 1, "b": 2}\n```',
        '<reasoning>draft: {"intent": "add", "a": 5, "b": 5}</reasoning>\n{"intent": "add", "a": 1, "b": 2}',
        '<think>\nThe user wants to add 1 and 2, so I pick the add tool.\n{"intent": "add", "a": 1, "b": 2}',
        'Okay, so the user wants 1+2. Draft: {"intent": "divide", "a": 1, "b": 2}\n</think>\n\n{"intent": "add", "a": 1, "b": 2}',
        '<think></think>{"intent": "add", "a": 1, "b": 2}',
    ],
    ids=["think", "thinking", "reasoning", "unclosed-think", "orphan-close", "empty-think"],
)
def test_reasoning_block_before_the_answer(text: str) -> None:
    assert parse(text, Step) == ADD


def test_json_only_inside_reasoning_is_not_an_answer() -> None:
    err = parse_error('<think>{"intent": "add", "a": 1, "b": 2}</think>\nI will add the numbers.')
    assert "reasoning" in str(err) and INTENTS in str(err)


def test_unclosed_reasoning_with_a_competing_draft_is_refused() -> None:
    text = '<think>\nMaybe {"intent": "divide", "a": 1, "b": 2}? No:\n{"intent": "add", "a": 1, "b": 2}'
    assert "2 different answers" in str(parse_error(text))


@pytest.mark.parametrize("tag", ["answer", "json", "output", "tool_call", "response", "final_answer"])
def test_answer_wrapped_in_tags(tag: str) -> None:
    text = f'I will add them.\n<{tag}>\n{{"intent": "add", "a": 1, "b": 2}}\n</{tag}>'
    assert parse(text, Step) == ADD


def test_text_outside_answer_tags_is_ignored() -> None:
    text = 'Example: {"intent": "divide", "a": 1, "b": 2}\n<answer>{"intent": "add", "a": 1, "b": 2}</answer>'
    assert parse(text, Step) == ADD


def test_harmony_channels_and_llama_function_tags() -> None:
    harmony = (
        '<|channel|>analysis<|message|>Draft {"intent": "divide", "a": 1, "b": 2}<|end|>'
        '<|start|>assistant<|channel|>final<|message|>{"intent": "add", "a": 1, "b": 2}<|return|>'
    )
    assert parse(harmony, Step) == ADD
    call = '<|channel|>commentary to=functions.add <|constrain|>json<|message|>{"a": 1, "b": 2}<|call|>'
    assert parse(call, Step) == ADD
    assert parse('<function=add>{"a": 1, "b": 2}</function>', Step) == ADD


# --- JSON in strings, quotes, control characters ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(json.dumps({"intent": "add", "a": 1, "b": 2})),
        json.dumps('```json\n{"intent": "add", "a": 1, "b": 2}\n```'),
        '{\\"intent\\": \\"add\\", \\"a\\": 1, \\"b\\": 2}',
        'Here is the call: {\\"intent\\": \\"add\\", \\"a\\": 1, \\"b\\": 2}',
    ],
    ids=["json-string", "json-string-fence", "escaped", "escaped-in-prose"],
)
def test_json_encoded_inside_a_string(text: str) -> None:
    assert parse(text, Step) == ADD


def test_fields_holding_json_strings() -> None:
    text = json.dumps({"intent": "plot", "points": json.dumps([{"x": 1, "y": 2}]), "origin": '{"x": 0, "y": 0}'})
    assert parse(text, Plot) == Plot(points=[Point(x=1, y=2)], origin=Point(x=0, y=0))
    labels = parse(json.dumps({"color": "red", "labels": '{"a": 1}'}), Paint).labels
    assert labels == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        "{\u201cintent\u201d: \u201cdone_for_now\u201d, \u201cmessage\u201d: \u201call done\u201d}",
        "{\u2018intent\u2019: \u2018done_for_now\u2019, \u2018message\u2019: \u2018all done\u2019}",
        '{"intent": "done_for_now", "message": \u201call done\u201d}',
    ],
)
def test_curly_quotes_as_delimiters(text: str) -> None:
    assert parse(text, Step) == DONE


def test_curly_apostrophe_inside_a_string_is_text() -> None:
    assert parse('{"intent": "done_for_now", "message": "it\u2019s done"}', Step).message == "it\u2019s done"


def test_raw_newlines_tabs_and_stray_quotes_inside_strings() -> None:
    text = '{"intent": "done_for_now", "message": "Line one\nLine two\tindented", "note": "he said "hi" twice"}'
    result = parse(text, Step)
    assert result.message == "Line one\nLine two\tindented"
    assert result.note == 'he said "hi" twice'


def test_escapes_are_decoded() -> None:
    text = "{'intent': 'done_for_now', 'message': 'caf\\u00e9 \\ud83d\\ude00 \\x41 C:\\Users'}"
    assert parse(text, Step).message == "caf\u00e9 \U0001f600 A C:\\Users"


# --- structure: arrays and scalars --------------------------------------------------------------


def test_one_element_array_around_the_object() -> None:
    assert parse('[{"intent": "add", "a": 1, "b": 2}]', Step) == ADD
    assert parse('```json\n[\n  {"intent": "add", "a": 1, "b": 2}\n]\n```', PlainStep) == ADD


def test_scalar_where_a_list_is_expected_is_wrapped() -> None:
    result = parse('{"intent": "paint", "color": "red", "tags": "urgent", "sizes": 3}', Paint)
    assert result.tags == ["urgent"] and result.sizes == [3]
    assert parse('{"points": {"x": 1, "y": 2}}', Plot).points == [Point(x=1, y=2)]
    assert parse("7", list[int]) == [7]


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("The numbers are [1, 2, 3].", list[int], [1, 2, 3]),
        ("42", int, 42),
        ('"42"', int, 42),
        ("Yes", Literal["yes", "no"], "yes"),
        ("hello there", str, "hello there"),
        ('{"x": 1, "y": "2"}', Point, Point(x=1, y=2)),
        ('{"a": 1, "b": 2,}', dict[str, int], {"a": 1, "b": 2}),
    ],
)
def test_other_schemas(text: str, schema: Any, expected: Any) -> None:
    assert parse(text, schema) == expected


def test_numbers_written_as_numbers_for_a_string_field() -> None:
    assert parse('{"intent": "deploy_backend", "tag": 12, "environment": "staging"}', Deploy).tag == "12"


# --- tool-call envelopes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '{"name": "Add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}',
        '{"tool": "add", "parameters": {"a": 1, "b": 2}}',
        '{"tool": "add", "args": {"a": 1, "b": 2}}',
        '{"tool": "add", "input": {"a": 1, "b": 2}}',
        '{"type": "tool_use", "id": "toolu_01", "name": "add", "input": {"a": 1, "b": 2}}',
        '{"function": {"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}}',
        '{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\\"a\\":1,\\"b\\":2}"}}',
        '{"tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}]}',
        '{"add": {"a": 1, "b": 2}}',
        '{"intent": "add", "arguments": {"a": 1, "b": 2}}',
        '{"action": "add", "action_input": {"a": 1, "b": 2}}',
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
    ],
)
def test_tool_call_envelopes_naming_an_intent_are_flattened(text: str) -> None:
    assert parse(text, Step) == ADD
    assert parse(text, PlainStep) == ADD


def test_envelopes_for_a_single_tool_schema() -> None:
    text = '{"name": "deploy_backend", "arguments": {"tag": "v1", "environment": "staging"}}'
    assert parse(text, Deploy) == Deploy(tag="v1", environment="staging")


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "multiply", "arguments": {"a": 1, "b": 2}}',
        '{"tool": "adder", "parameters": {"a": 1, "b": 2}}',
        '{"multiply": {"a": 1, "b": 2}}',
    ],
)
def test_envelopes_not_naming_an_intent_are_not_flattened(text: str) -> None:
    err = parse_error(text)
    assert INTENTS in str(err)
    assert_compact(str(err))


def test_envelope_name_is_not_taken_from_a_real_field() -> None:
    class Greet(BaseModel):
        intent: Literal["greet"] = "greet"
        name: str

    assert parse('{"intent": "greet", "name": "greet"}', Greet) == Greet(name="greet")
    assert parse('{"name": "Ada"}', Greet) == Greet(name="Ada")


@pytest.mark.parametrize(
    "text",
    [
        '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1, "b": 2}}]',
        '[TOOL_CALLS]add[ARGS]{"a": 1, "b": 2}',
        '<|python_tag|>{"name": "add", "parameters": {"a": 1, "b": 2}}<|eom_id|>',
        '{"type": "function", "name": "add", "parameters": {"a": 1, "b": 2}}',
        '{"function_call": {"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}}',
        '{"thought": "The user wants a sum.", "next_step": {"intent": "add", "a": 1, "b": 2}}',
        '{"steps": [{"intent": "add", "a": 1, "b": 2}]}',
    ],
    ids=["mistral", "mistral-v3", "llama-python-tag", "llama-json", "openai-legacy", "wrapped", "wrapped-list"],
)
def test_vendor_tool_call_formats(text: str) -> None:
    assert parse(text, Step) == ADD


@pytest.mark.parametrize(
    "text",
    [
        "```tool_code\nadd(a=1, b=2)\n```",
        "I will call add(a=1, b=2) now.",
        "```yaml\nintent: add\na: 1\nb: 2\n```",
    ],
    ids=["gemma-tool-code", "call-in-prose", "yaml"],
)
def test_answers_written_without_json(text: str) -> None:
    assert parse(text, Step) == ADD


@pytest.mark.parametrize(
    "text",
    [
        '{{"intent": "add", "a": 1, "b": 2}}',  # braces doubled by a template engine
        '\ufeff{"intent": "add", "a": 1, "b": 2}',
        '{"intent": "add", "a": 1, "b": 2}<|im_end|>',
        '{"intent": "add", "a": 1, "b": 2}\n```',
        'Note: {a} is the first operand.\n{"intent": "add", "a": 1, "b": 2}',
    ],
)
def test_stray_characters_around_the_object(text: str) -> None:
    assert parse(text, Step) == ADD


@pytest.mark.parametrize("intent", ["DoneForNow", "done-for-now", "Done For Now", "DONE_FOR_NOW"])
def test_intent_spelled_with_other_separators(intent: str) -> None:
    assert parse(json.dumps({"intent": intent, "message": "all done"}), Step) == DONE
    assert parse(json.dumps({"name": intent, "arguments": {"message": "all done"}}), Step) == DONE


def test_markup_inside_json_strings_is_text() -> None:
    text = '```json\n{"intent": "done_for_now", "message": "wrap it in <answer> tags, then </think>"}\n```'
    assert parse(text, Step).message == "wrap it in <answer> tags, then </think>"


# --- invalid JSON and limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": NaN, "b": 2}',
        '{"intent": "add", "a": Infinity, "b": 2}',
        '{"intent": "add", "a": 1e999, "b": 2}',
    ],
)
def test_nan_and_infinity_are_rejected(text: str) -> None:
    assert_compact(str(parse_error(text)))


def test_deep_nesting_is_a_parse_error_not_a_recursion_error() -> None:
    for text in [
        "[" * 5000,
        "{" * 5000,
        '{"a":' * 5000,
        "[" * 5000 + "]" * 5000,
        '{"intent": "add", "a": ' + "[" * 3000,
    ]:
        assert_compact(str(parse_error(text)))


def test_long_garbage_is_a_compact_error() -> None:
    rng = random.Random(7)
    garbage = "".join(rng.choice(string.printable) for _ in range(100_000))
    for text in [garbage, "{'" * 50_000, "{a" * 50_000, "[{" * 50_000, '{"a":"' * 20_000, "<think>" * 10_000]:
        assert_compact(str(parse_error(text)))


def _best_parse_seconds(text: str, repeats: int = 3) -> float:
    """The fastest of a few runs: load on a shared machine only ever adds time, so the minimum is the signal."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        parse_error(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("unit", ["garbage", "{'", "{a", "[{", '{"a":"', "<think>"])
def test_long_garbage_fails_in_linear_time(unit: str) -> None:
    # A ratio between two input sizes, not a wall-clock limit: it holds on a loaded machine. 4x the input
    # costs about 4x the time when parsing is linear (5x with a log factor); a quadratic path costs 16x.
    size = 40_000
    if unit == "garbage":
        rng = random.Random(7)
        large = "".join(rng.choice(string.printable) for _ in range(4 * size))
        small = large[:size]
    else:
        small, large = unit * (size // len(unit)), unit * (4 * size // len(unit))
    ratio = _best_parse_seconds(large) / _best_parse_seconds(small)
    assert ratio < 10, f"4x the input took {ratio:.1f}x the time: a superlinear path in parse()"


# --- never guess --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'I could add: {"intent": "add", "a": 1, "b": 2}\nor divide: {"intent": "divide", "a": 1, "b": 2}',
        '[{"intent": "add", "a": 1, "b": 2}, {"intent": "done_for_now", "message": "3"}]',
        '```json\n{"intent": "add", "a": 1, "b": 2}\n```\n```json\n{"intent": "add", "a": 3, "b": 4}\n```',
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n<tool_call>{"name": "divide", "arguments": {"a": 1, "b": 2}}</tool_call>',
        '{"intent": "add", "a": 1, "b": 2}{"intent": "add", "a": 1, "b": 3}',
    ],
    ids=["prose", "array", "two-fences", "two-tool-calls", "back-to-back"],
)
def test_two_different_answers_are_refused(text: str) -> None:
    err = parse_error(text)
    assert "2 different answers" in str(err) and "only one next step" in str(err)
    assert INTENTS in str(err)
    assert_compact(str(err))


def test_two_answers_are_refused_for_a_plain_union_too() -> None:
    text = '{"intent": "add", "a": 1, "b": 2}\n{"intent": "divide", "a": 1, "b": 2}'
    assert "2 different answers" in str(parse_error(text, PlainStep))


def test_the_same_answer_repeated_is_fine() -> None:
    text = '```json\n{"intent": "add", "a": 1, "b": 2}\n```\nSo I call {"intent": "add", "a": 1.0, "b": 2} as shown.'
    assert parse(text, Step) == ADD
    assert parse('[{"intent": "add", "a": 1, "b": 2}, {"intent": "add", "a": 1, "b": 2}]', Step) == ADD


def test_invalid_objects_next_to_the_answer_do_not_count() -> None:
    text = 'The schema is {"intent": "<name>"}. My answer:\n{"intent": "add", "a": 1, "b": 2}'
    assert parse(text, Step) == ADD


@pytest.mark.parametrize(
    "text",
    [
        'First {"intent": "add", "a": 1, "b": 2}, then {"intent": "divide", "a": 3}',
        '{"intent": "divide", "a": 3}\n{"intent": "add", "a": 1, "b": 2}',
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>\n<tool_call>{"name": "divide", "arguments": {"a": 3}}</tool_call>',
        '[{"intent": "add", "a": 1, "b": 2}, {"intent": "divide", "a": 3}]',
        '<think>\nMaybe {"intent": "divide", "a": 3}? No:\n{"intent": "add", "a": 1, "b": 2}',
    ],
    ids=["prose", "invalid-first", "two-tool-calls", "array", "unclosed-think"],
)
def test_a_valid_step_next_to_an_invalid_one_is_refused_naming_both(text: str) -> None:
    for schema in (Step, PlainStep):
        message = str(parse_error(text, schema))
        assert "the output holds 2 next steps (add; divide, invalid: field 'b' is required" in message, message
        assert "only one next step is allowed" in message and message.endswith(INTENTS)
        assert_compact(message)


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1, "b": 2}\nFor example, {"example": true} would be ignored.',
        'Given {"foo": 1}, I call:\n{"intent": "add", "a": 1, "b": 2}',
        '{"intent": "add", "a": 1, "b": 2}\nIt returns {"result": 3}.',
        '<think>Maybe {"intent": "divide", "a": 3}?</think>\n{"intent": "add", "a": 1, "b": 2}',
    ],
    ids=["example", "foo", "result", "draft-in-think"],
)
def test_prose_snippets_and_drafts_next_to_the_answer_do_not_count(text: str) -> None:
    assert parse(text, Step) == ADD
    assert parse(text, PlainStep) == ADD


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('{"intent": "add", "a": 1, "b": 2}\n{"intent": "unknown_tool"}', "unknown_tool"),
        ('{"intent": "add", "a": 1, "b": 2}\n{"name": "search_web", "arguments": {"q": "sum"}}', "search_web"),
        ('<function=add>{"a": 1, "b": 2}</function>\n<function=search_web>{"q": "sum"}</function>', "search_web"),
    ],
    ids=["intent", "envelope", "llama-markup"],
)
def test_an_unknown_tool_next_to_the_answer_is_refused_naming_it(text: str, name: str) -> None:
    # The model clearly tried to take a second step: say which, and what it may use instead.
    for schema in (Step, PlainStep):
        message = str(parse_error(text, schema))
        assert f"the output holds 2 next steps (add; {name!r}, not an allowed intent)" in message, message
        assert message.endswith(INTENTS)
        assert_compact(message)


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1, "b": 2}\n{"intent": "add", "a": 1, "b',  # a repeat cut by max tokens
        'I will use {"intent": "add"}: {"intent": "add", "a": 1, "b": 2}',  # the intent named in passing
        '{"intent": "add", "a": 1, "b": 2}\n{"intent": "ADD", "a": "1"}',
    ],
)
def test_a_partial_copy_of_the_answer_is_the_same_step(text: str) -> None:
    assert parse(text, Step) == ADD


def test_an_invalid_step_with_the_same_intent_but_other_values_is_another_step() -> None:
    message = str(parse_error('{"intent": "add", "a": 1, "b": 2}\n{"intent": "add", "a": 3, "b": "x"}'))
    assert "2 next steps (add; add, invalid: field 'b'" in message


def test_a_lone_invalid_step_next_to_prose_snippets_reports_its_own_error() -> None:
    message = str(parse_error('{"example": true} and {"name": "divide", "arguments": {"a": 1}}'))
    assert message.startswith("invalid next step: field 'b' is required")


def test_answers_for_schemas_without_intents_are_recognised_by_their_fields() -> None:
    message = str(parse_error('{"x": 1, "y": 2} or {"x": 1, "y": "abc"}', Point))
    assert "the output holds 2 answers (Point; Point, invalid: field 'y'" in message
    assert "only one answer is allowed" in message and "intent" not in message
    # A fragment without every required field, or with other keys, is not an answer.
    assert parse('{"x": 1, "y": 2}, where {"x": 5} moves right', Point) == Point(x=1, y=2)
    assert parse('{"x": 1, "y": 2} (not {"x": 1, "z": 2})', Point) == Point(x=1, y=2)
    # A single tool whose intent has a default: its fields say it is a step.
    text = '{"tag": "v2", "environment": "staging"}\n{"tag": "v3", "environment": "prod-eu"}'
    assert "2 next steps (deploy_backend; deploy_backend, invalid: field 'environment'" in str(
        parse_error(text, Deploy)
    )


def test_messages_about_several_steps_stay_short() -> None:
    answer = '{"intent": "add", "a": 1, "b": 2}\n'
    long_name = "tool_" + "x" * 5000
    for text in [
        answer + json.dumps({"intent": long_name}),
        answer + json.dumps({"intent": "divide", "a": "y" * 5000}),
        answer + json.dumps({"name": long_name, "arguments": {"q": "z" * 5000}}),
        answer + "\n".join(json.dumps({"intent": f"tool_{i}_{'z' * 200}"}) for i in range(60)),
    ]:
        message = str(parse_error(text))
        assert "next steps" in message and message.endswith(INTENTS)
        assert_compact(message)
    models = [
        create_model(f"T{i}", intent=(Literal[f"tool_number_{i:03d}_with_a_long_name"], ...))  # type: ignore[valid-type]
        for i in range(60)
    ]
    schema = Annotated[Union[tuple(models)], Field(discriminator="intent")]  # noqa: UP007
    text = '{"intent": "tool_number_000_with_a_long_name"}\n' + json.dumps({"intent": long_name})
    message = str(parse_error(text, schema))
    assert "2 next steps" in message and "allowed intents: tool_number_000_with_a_long_name" in message
    assert_compact(message)


class Cat(BaseModel):
    name: str
    lives: int = 9


class Dog(BaseModel):
    name: str
    good: bool = True


class Ints(BaseModel):
    value: int


class Strs(BaseModel):
    value: str


def test_plain_union_tie_is_an_error_naming_both_members() -> None:
    err = parse_error('{"name": "Rex"}', Cat | Dog)
    assert "Cat" in str(err) and "Dog" in str(err)
    assert_compact(str(err))


def test_plain_union_prefers_the_member_using_more_keys_or_the_strict_match() -> None:
    assert parse('{"name": "Rex", "good": false}', Cat | Dog) == Dog(name="Rex", good=False)
    assert parse('{"value": "5"}', Ints | Strs) == Strs(value="5")
    assert parse('{"value": 5}', Ints | Strs) == Ints(value=5)
    assert parse("5", int | str) == 5
    assert parse('"5"', int | str) == "5"


def test_plain_union_of_intents_dispatches_on_the_intent() -> None:
    assert parse('{"intent": "divide", "a": 1, "b": 2}', PlainStep) == Divide(intent="divide", a=1, b=2)


# --- error messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I think the answer is 5", "no JSON object found"),
        ("", "empty"),
        ('{"intent": "add", "a": 1 "b": }', "invalid JSON at line 1"),
        ('{"intent": "add", "a": "one", "b": 2}', "field 'a': Input should be a valid number"),
        ('{"intent": "add", "a": 1}', "field 'b' is required"),
        ('{"intent": "multiply", "a": 1, "b": 2}', "unknown intent 'multiply'"),
        ('{"a": 1, "b": 2}', "missing 'intent'"),
        ("null", "expected a JSON object"),
    ],
)
def test_error_messages_say_what_was_wrong_and_list_the_intents(text: str, expected: str) -> None:
    for schema in (Step, PlainStep):
        message = str(parse_error(text, schema))
        assert expected in message, message
        assert message.endswith(INTENTS)
        assert_compact(message)


def test_error_message_stays_short_for_huge_inputs() -> None:
    long_value = "x" * 5000
    for text in [
        json.dumps({"intent": "add", "a": long_value, "b": long_value}),
        json.dumps({"intent": long_value}),
        '{"intent": "add", ' + ", ".join(f'"k{i}": [' for i in range(150)),
        "no json " * 2000,
    ]:
        assert_compact(str(parse_error(text)))


def test_error_message_for_many_intents_is_still_short() -> None:
    models = [
        create_model(f"T{i}", intent=(Literal[f"tool_number_{i:03d}_with_a_long_name"], ...))  # type: ignore[valid-type]
        for i in range(60)
    ]
    schema = Annotated[Union[tuple(models)], Field(discriminator="intent")]  # noqa: UP007
    message = str(parse_error("nothing here", schema))
    assert_compact(message)
    assert "allowed intents: tool_number_000_with_a_long_name, tool_number_001" in message


def test_error_carries_the_raw_text_and_the_intents() -> None:
    text = "I cannot decide " + "which tool to use. " * 100
    err = parse_error(text)
    assert err.raw == text  # type: ignore[attr-defined]
    assert err.allowed_intents == ["add", "divide", "request_human_input", "done_for_now"]  # type: ignore[attr-defined]
    assert isinstance(err, ValueError)


def test_single_intent_model_lists_its_intent() -> None:
    assert str(parse_error("no", Deploy)).endswith("allowed intents: deploy_backend")


def test_schemas_without_intents_do_not_mention_intents() -> None:
    message = str(parse_error("nope", Point))
    assert "intent" not in message and "no JSON object found" in message


def test_a_non_schema_is_a_user_error() -> None:
    with pytest.raises(UserError):
        parse("{}", object())


def test_non_text_input_is_a_parse_error() -> None:
    assert "text" in str(parse_error(None))  # type: ignore[arg-type]


# --- the contract: every result validates -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"intent": "add", "a": 1, "b": 2}',
        "```json\n{'intent': 'ADD', a: '1', b: 2,}\n```",
        '{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}',
        '<think>hmm</think>[{"intent": "done_for_now", "message": "ok", "note": "cut',
    ],
)
def test_results_always_validate_against_the_schema(text: str) -> None:
    result = parse(text, Step)
    assert TypeAdapter(Step).validate_python(result.model_dump()) == result


def test_per_schema_work_is_cached() -> None:
    from twelvefactor._plan import plan_for

    parse('{"intent": "add", "a": 1, "b": 2}', Step)
    plan = plan_for(Step)
    parse('{"intent": "add", "a": 1, "b": 2}', Step)
    assert plan_for(Step) is plan


def test_frozen_tool_models_from_twelvefactor_tools() -> None:
    from twelvefactor.tools import Toolset, tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    union = Toolset([add]).union
    result = parse('Sure!\n```json\n{"intent": "ADD", "a": "1", "b": 2,}\n```', union)
    assert result.intent == "add" and (result.a, result.b) == (1, 2)
    assert parse('{"intent": "done_for_now", "message": "3"}', union).intent == "done_for_now"
