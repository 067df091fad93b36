"""How long ``twelvefactor.parsing.parse`` takes per model reply (plain script, not a test).

    python bench/parse_speed.py

Prints microseconds per parse for clean, fenced and messy replies against a six-intent discriminated
union. The agent step budget is 100 µs; a clean reply should stay under 15 µs.
"""

from __future__ import annotations

import contextlib
import random
import string
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from twelvefactor.errors import ParseError  # noqa: E402
from twelvefactor.parsing import parse  # noqa: E402


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


Step = Annotated[Add | Subtract | Multiply | Divide | Ask | Done, Field(discriminator="intent")]

INPUTS = {
    "clean": '{"intent":"add","a":1,"b":2}',
    "clean, pretty-printed": '{\n  "intent": "add",\n  "a": 1,\n  "b": 2\n}\n',
    "fenced with prose": 'Sure! Here is the JSON:\n```json\n{"intent": "add", "a": 1, "b": 2}\n```\nLet me know!',
    "think block + fence": (
        '<think>The user wants 2 + 3. I will call add.</think>\n```json\n{"intent": "add", "a": 2, "b": 3}\n```'
    ),
    "messy (quotes, comments, case)": ("Here you go:\n```\n{'intent': 'ADD', // the tool\n a: '5', b: 2,}\n```"),
    "tool-call envelope": '{"name": "add", "arguments": {"a": 1, "b": 2}}',
    "truncated (optional field)": '{"intent": "done_for_now", "message": "all done", "note": "abc',
}


PlainStep = Add | Subtract | Multiply | Divide | Ask | Done


def bench(label: str, text: str, number: int, schema: Any = Step) -> None:
    def once() -> None:
        with contextlib.suppress(ParseError):
            parse(text, schema)

    report(label, once, number)


def report(label: str, once: Callable[[], object], number: int) -> None:
    once()
    best = min(timeit.repeat(once, number=number, repeat=5))
    print(f"{label:36s} {best / number * 1e6:10.1f} µs")


def main() -> None:
    print(f"{'input (6-intent discriminated union)':36s} {'per parse':>13s}")
    adapter: TypeAdapter[Any] = TypeAdapter(Step)
    clean = INPUTS["clean"]
    report("reference: TypeAdapter.validate_json", lambda: adapter.validate_json(clean), 20_000)
    for label, text in INPUTS.items():
        bench(label, text, 20_000)
    bench("clean, plain union (no discriminator)", clean, 20_000, PlainStep)
    rng = random.Random(0)
    garbage = "".join(rng.choice(string.printable) for _ in range(100_000))
    bench("100 KB random text (fails)", garbage, 3)
    bench("5000 nested '[' (fails)", "[" * 5000, 100)


if __name__ == "__main__":
    main()
