"""How long ``twelvefactor.parsing.parse`` takes per model reply, and what it returns (plain script, not a test).

    python bench/parse_speed.py

Prints microseconds per parse and the outcome for each input shape: clean, fenced and messy replies
against a six-intent discriminated union, then the shapes schema-aligned parsing reads or refuses
(truncation, prose, numbers as people write them, unquoted objects...). Where ``json_repair`` is
installed, the same inputs go through ``json_repair.loads`` + pydantic validation beside it. The
outcome column says ``ok`` (the expected value), ``refused`` (an error), or ``WRONG`` (a value that is
not the expected one: a quietly wrong object). The agent step budget is 100 µs; a clean reply should
stay under 15 µs.
"""

from __future__ import annotations

import contextlib
import random
import string
import sys
import timeit
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from twelvefactor.parsing import parse, parse_partial  # noqa: E402

try:
    import json_repair  # a bench-only comparison: pip install json_repair
except ImportError:  # pragma: no cover - optional
    json_repair = None


class Add(BaseModel):
    intent: Literal["add"]
    a: float
    b: float


class Subtract(BaseModel):
    intent: Literal["subtract"]
    a: float
    b: float


class Multiply(BaseModel):
    intent: Literal["multiply"]
    a: float
    b: float


class Divide(BaseModel):
    intent: Literal["divide"]
    a: float
    b: float


class Ask(BaseModel):
    intent: Literal["request_human_input"] = "request_human_input"
    question: str


class Done(BaseModel):
    intent: Literal["done_for_now"] = "done_for_now"
    message: str
    note: str | None = None


Step = Annotated[Add | Subtract | Multiply | Divide | Ask | Done, Field(discriminator="intent")]
PlainStep = Add | Subtract | Multiply | Divide | Ask | Done


class Number(Enum):
    ONE = "ONE"
    TWO = "TWO"


class Config(BaseModel):
    name: str
    labels: dict[str, int]


class Snippet(BaseModel):
    code: str


class Totals(BaseModel):
    total: int
    price: float


class Foo(BaseModel):
    foo: int


class Item(BaseModel):
    k: int


class Person(BaseModel):
    name: str
    description: str


REFUSED: Any = object()  # the expected outcome is an error
ADD = Add(intent="add", a=1, b=2)


class Case:
    __slots__ = ("label", "text", "schema", "expected")

    def __init__(self, label: str, text: str, schema: Any, expected: Any) -> None:
        self.label, self.text, self.schema, self.expected = label, text, schema, expected


CASES = [
    Case("clean", '{"intent":"add","a":1,"b":2}', Step, ADD),
    Case("clean, pretty-printed", '{\n  "intent": "add",\n  "a": 1,\n  "b": 2\n}\n', Step, ADD),
    Case(
        "fenced with prose", 'Sure! Here is the JSON:\n```json\n{"intent": "add", "a": 1, "b": 2}\n```\nOK!', Step, ADD
    ),
    Case(
        "think block + fence",
        '<think>2 + 3: add.</think>\n```json\n{"intent": "add", "a": 2, "b": 3}\n```',
        Step,
        Add(intent="add", a=2, b=3),
    ),
    Case(
        "messy (quotes, comments, case)",
        "Here:\n```\n{'intent': 'ADD', // the tool\n a: '5', b: 2,}\n```",
        Step,
        Add(intent="add", a=5, b=2),
    ),
    Case("tool-call envelope", '{"name": "add", "arguments": {"a": 1, "b": 2}}', Step, ADD),
    Case("clean, plain union", '{"intent":"add","a":1,"b":2}', PlainStep, ADD),
    Case(
        "truncated, optional field cut",
        '{"intent": "done_for_now", "message": "all done", "note": "abc',
        Step,
        Done(message="all done"),
    ),
    Case("truncated, required field cut", '{"intent": "add", "a": 1, "b": 2', Step, REFUSED),
    Case("truncated list [1, 2, 3", "[1, 2, 3", list[int], REFUSED),
    Case('truncated map {"a": "b', '{"a": "b', dict[str, str], REFUSED),
    Case("nested map cut after an entry", '{"name": "web", "labels": {"a": 1, "b": 2,', Config, REFUSED),
    Case(
        "triple-quoted string",
        '{"code": """def f():\n    return 1"""}',
        Snippet,
        Snippet(code="def f():\n    return 1"),
    ),
    Case("enum in prose", "The answer is **TWO**.", Number, Number.TWO),
    Case("two enum members in prose", "ONE or TWO", Number, REFUSED),
    Case("boolean in prose", 'False.\n\nThe statement "2 + 2 = 5" is false', bool, False),
    Case(
        "thousands separators in JSON",
        '{"total": 12,111, "price": -2,000.00}',
        Totals,
        Totals(total=12111, price=-2000),
    ),
    Case("fraction 1/5", "1/5", float, 0.2),
    Case("bare scalar, one required field", "1214", Foo, Foo(foo=1214)),
    Case("several objects for a list", '{"k": 1} {"k": 2}', list[Item], [Item(k=1), Item(k=2)]),
    Case(
        "unquoted values with spaces",
        "{\n  name: John Smith\n  description: a **tall** man\n}",
        Person,
        Person(name="John Smith", description="a **tall** man"),
    ),
    Case(
        "key lines with remarks",
        'name: "John" is his name\ndescription: "tall"',
        Person,
        Person(name="John", description="tall"),
    ),
]


def outcome(run: Callable[[], Any], expected: Any) -> str:
    try:
        got = run()
    except Exception:  # noqa: BLE001 - any refusal counts: ParseError, ValidationError, ValueError
        return "refused" if expected is REFUSED else "refused (should parse)"
    return "ok" if expected is not REFUSED and got == expected else "WRONG"


def micros(run: Callable[[], Any]) -> float:
    def once() -> None:
        with contextlib.suppress(Exception):  # refusals are timed too
            run()

    timer = timeit.Timer(once)
    number, _ = timer.autorange()  # enough runs for ~0.2 s
    return min(timer.repeat(repeat=3, number=number)) / number * 1e6


def repaired(text: str, schema: Any) -> Callable[[], Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(schema)
    return lambda: adapter.validate_python(json_repair.loads(text))


def main() -> None:
    peer = json_repair is not None
    header = f"{'input':34s} {'twelvefactor':>22s}"
    print(header + (f" {'json_repair + pydantic':>30s}" if peer else "  (pip install json_repair to compare)"))
    adapter: TypeAdapter[Any] = TypeAdapter(Step)
    clean = CASES[0].text
    print(f"{'reference: TypeAdapter.validate_json':34s} {micros(lambda: adapter.validate_json(clean)):9.1f} µs")
    for case in CASES:
        ours = lambda case=case: parse(case.text, case.schema)  # noqa: E731
        line = f"{case.label:34s} {micros(ours):9.1f} µs {outcome(ours, case.expected):10s}"
        if peer:
            theirs = repaired(case.text, case.schema)
            line += f" {micros(theirs):9.1f} µs {outcome(theirs, case.expected)}"
        print(line)
    streaming = '{"intent": "done_for_now", "message": "I added 1 and 2 and the res'
    print(f"{'parse_partial of a cut step':34s} {micros(lambda: parse_partial(streaming, Step)):9.1f} µs")
    rng = random.Random(0)
    garbage = "".join(rng.choice(string.printable) for _ in range(100_000))
    print(f"{'100 KB random text (refused)':34s} {micros(lambda: parse(garbage, Step)):9.1f} µs")
    print(f"{'5000 nested [ (refused)':34s} {micros(lambda: parse('[' * 5000, Step)):9.1f} µs")
    ints = "[" + ", ".join(str(i) for i in range(100_000)) + ",]"  # ~690 KB, lenient path (trailing comma)
    per_mb = micros(lambda: parse(ints, list[int])) / (len(ints) / 1e6) / 1e6
    print(f"{'messy list of ints':34s} {per_mb:9.2f} s per MB")


if __name__ == "__main__":
    main()
