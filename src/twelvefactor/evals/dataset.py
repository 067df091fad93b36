"""Eval datasets: cases an agent is scored on, read from JSON, JSONL or TOML files.

A case says how a thread starts (``input``: a user message, or ``events``), how people answer what the
agent asks (``answers``, so a run reaches its end unattended) and what the resulting thread must show
(``expect``). A file holds one case, a list of cases, or ``{"cases": [...]}`` (TOML: ``[[cases]]``);
JSONL holds one case per line. A bad file is a :class:`DatasetError` naming the file, the case and the
field.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from twelvefactor.errors import DatasetError, UserError
from twelvefactor.events import Event, HumanRequest, HumanRequestKind, ReconcileOutcome, outside_event
from twelvefactor.thread import Status

_CASE_ID = r"^[A-Za-z0-9_.:-]{1,128}$"  # a name in reports, test ids and file names: no spaces, no markup


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Strict):
    """A person's scripted answer to a request the agent may make.

    The first unused answer whose ``kind``, ``intent`` and ``question_contains`` fit the pending request
    (fields left out fit anything) answers it: ``approved`` for an approval, ``text`` for a question,
    ``outcome`` for a reconcile request.
    """

    kind: HumanRequestKind | None = None
    intent: str | None = None
    question_contains: str | None = None
    approved: bool | None = None
    text: str | None = None
    outcome: ReconcileOutcome | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Answer:
        if self.approved is None and self.text is None and self.outcome is None:
            raise ValueError("an answer needs `approved` (approvals), `text` (questions) or `outcome` (reconcile)")
        return self

    def fits(self, request: HumanRequest) -> bool:
        """Whether this answer is meant for ``request`` and says what that kind of request needs."""
        if self.kind is not None and self.kind != request.kind:
            return False
        if self.intent is not None and self.intent != request.intent:
            return False
        if self.question_contains is not None and self.question_contains.lower() not in request.question.lower():
            return False
        needed = {"approval": self.approved, "input": self.text, "reconcile": self.outcome}[request.kind]
        return needed is not None


class ToolExpectation(_Strict):
    """A call the thread must hold: this intent, with at least these arguments (a subset, compared as JSON)."""

    intent: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class MessageCheck(_Strict):
    """Checks on the thread's final message (its ``done`` message): every one given must hold."""

    equals: str | None = None
    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    ignore_case: bool = False

    @field_validator("contains", "not_contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value


class ScorerRef(_Strict):
    """A custom scorer, ``module:function`` (or ``file.py:function``), called with (thread, case); it returns
    a bool, a score in 0..1, a ``Score``, or a ``(score, reason)`` pair. It passes at ``min`` or above."""

    scorer: str
    min: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("scorer")
    @classmethod
    def _names_a_function(cls, value: str) -> str:
        module, _, function = value.rpartition(":")
        if not module or not function.isidentifier():
            raise ValueError(f"{value!r} is not module:function (e.g. 'my_evals.scorers:polite')")
        return value


class Expect(_Strict):
    """What the resulting thread must show. Only what is given is checked."""

    status: Status | None = None
    tool_calls: list[ToolExpectation] = Field(default_factory=list)
    tool_calls_in_order: bool = False
    forbidden_intents: list[str] = Field(default_factory=list)
    final_message: MessageCheck | None = None
    max_steps: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    scorers: list[ScorerRef] = Field(default_factory=list)

    @field_validator("scorers", mode="before")
    @classmethod
    def _plain_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"scorer": item} if isinstance(item, str) else item for item in value]
        return value


class Case(_Strict):
    """One eval case: how a thread starts, who answers what, what it must end with."""

    id: Annotated[str, Field(pattern=_CASE_ID)]
    description: str = ""
    input: str | None = None
    events: list[dict[str, JsonValue]] | None = None
    answers: list[Answer] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)
    source_thread: str | None = None  # the stored thread this case was exported from

    @model_validator(mode="after")
    def _one_start(self) -> Case:
        if (self.input is None) == (self.events is None):
            raise ValueError("give the case an `input` message or its initial `events` (one of the two)")
        if self.events is not None:
            if not self.events:
                raise ValueError("`events` is empty: give at least one event (or an `input` message)")
            try:
                self.initial_events()  # each one checked now, not when the case runs
            except ValueError as exc:
                raise ValueError(f"events: {exc}") from None
        return self

    def initial_events(self) -> tuple[Event, ...]:
        """The events the case's thread starts with (a user message for ``input``)."""
        if self.events is None:
            return (outside_event({"type": "user_message", "content": self.input or ""}),)
        try:
            return tuple(outside_event(data) for data in self.events)
        except UserError as exc:
            raise ValueError(str(exc)) from None


class Dataset(_Strict):
    """Cases with unique ids, and where they were read from."""

    name: str = "dataset"
    cases: list[Case]

    @model_validator(mode="after")
    def _unique_ids(self) -> Dataset:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"two cases have the id {case.id!r}: ids must be unique")
            seen.add(case.id)
        return self

    def __len__(self) -> int:
        return len(self.cases)


def load_dataset(path: str | Path) -> Dataset:
    """The dataset in ``path`` (.json, .jsonl or .toml), or DatasetError naming the case and field at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {str(path)!r}: {exc.strerror}") from exc
    items = _items(path, text)
    return dataset_from(items, name=path.stem, where=str(path))


def dataset_from(items: Iterable[Any], *, name: str = "dataset", where: str = "dataset") -> Dataset:
    """A dataset from case dicts (or Cases), with the same checks and messages as ``load_dataset``."""
    cases: list[Case] = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, Case):
            cases.append(item)
            continue
        label = _label(item, number)
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: {label} is a {type(item).__name__}, not an object with an id and an input")
        try:
            cases.append(Case.model_validate(item))
        except ValidationError as exc:
            raise DatasetError(f"{where}: {label}: {_first_problem(exc)}") from exc
    if not cases:
        raise DatasetError(f"{where} holds no cases: add at least one (an object with an id and an input)")
    try:
        return Dataset(name=name, cases=cases)
    except ValidationError as exc:
        raise DatasetError(f"{where}: {_first_problem(exc)}") from exc


def _items(path: Path, text: str) -> Sequence[Any]:
    suffix = path.suffix.lower()
    where = str(path)
    if suffix == ".jsonl":
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as exc:
                    raise DatasetError(f"{where}: line {number} is not JSON: {exc}") from exc
        return items
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DatasetError(f"{where} is not TOML: {exc}") from exc
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{where} is not JSON: {exc}") from exc
    else:
        raise DatasetError(f"{where}: a dataset is a .json, .jsonl or .toml file, not {suffix or 'a file without one'}")
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "cases" in data:
        cases = data["cases"]
        if not isinstance(cases, list):
            raise DatasetError(f"{where}: `cases` must be a list of cases")
        return cases
    return [data]  # one case on its own (what `threads export --as-case` writes)


def _label(item: Any, number: int) -> str:
    case_id = item.get("id") if isinstance(item, dict) else None
    return f"case {case_id!r} (#{number})" if isinstance(case_id, str) else f"case #{number}"


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    more = exc.error_count() - 1
    return (f"{where}: {message}" if where else message) + (f" (and {more} more)" if more else "")
