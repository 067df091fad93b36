"""Schema-aligned parsing: raw model text -> a validated instance of the schema, or a short ParseError.

The model's whole job is to emit ONE next step as JSON; what it actually emits is JSON in a markdown
fence, after a ``<think>`` block, in a tool-call envelope, with single quotes, cut off by max tokens...
:func:`parse` turns that into a typed object, or into a ``ParseError`` short enough to go back into the
context window. The pipeline:

0. Fast path: when ``text.strip()`` is plain JSON, decode it in C and go straight to step 4.
1. Strip reasoning (``<think>``, ``<reasoning>``...; a draft in there is never an answer) and pick the
   answer regions (``<answer>``, ``<tool_call>``, harmony channels...) -- :mod:`._reply`.
2. Find candidates: every top-level ``{...}``/``[...]`` in those regions -- :mod:`._lenient_json`. Where
   the schema is a list of objects, several top-level objects are its items (both answers kept).
3. Lenient parse of each candidate (hand-written, iterative); where the end of the text cuts a value,
   every open container and the cut scalar are marked, nothing is dropped.
4. Schema-guided coercion: unwrap JSON held in strings and one-element arrays, flatten tool-call
   envelopes whose name is one of the schema's intents, fix the case of intents/literals/enums, read
   numbers as people write them (``12,111``, ``1/5``, ``5 km``), wrap a scalar where a list is expected,
   unwrap a one-element wrapper around what the schema wants (``{"answer": true}`` for a bool), fill a
   class's one required field from a bare scalar. Coercion only reshapes; it never decides validity --
   :mod:`._coerce`.
   A truncated candidate is then settled against the schema: a value the cut left unfinished (a scalar
   mid-token, a list or map never closed) is left to its field's default when the field is optional,
   and is an error naming the field when it is required; a model's object may lack optional fields
   only. Never a shorter list or an emptier map returned as if whole.
5. Pydantic validation against ``schema``: every returned object comes out of it. A number, boolean,
   enum or literal written without JSON is the reply itself as a value, else the one value its prose
   names; two different values named, or one named only to be denied (``not TWO``), is an error --
   :mod:`._scalars`.
6. Ambiguity check, never a guess: two different valid answers, two union members that fit equally, or
   one valid answer next to a candidate that failed validation but was still meant as a next step (it
   names an intent, or calls a tool) are an error. Prose examples (``{"example": true}``) are ignored,
   and so is a candidate that only repeats part of the answer (a copy cut off by max tokens).

A ``str`` schema is the exception: the answer is the reply's text (reasoning and an outer fence
removed; a reply that is one JSON string gives that string's content; an object or a list gives its
text as written).

This module holds the pipeline and the error messages; the per-schema plan is in :mod:`._plan` (built
once per schema and cached), the view of an unfinished output in :mod:`._partial`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel, ValidationError

from twelvefactor._coerce import (
    NAME_KEYS,
    Attempt,
    CutOff,
    Intents,
    ModelShape,
    OptionalShape,
    Shape,
    attempted_step,
    objectify,
    resolve_intent,
    unwrap,
)
from twelvefactor._lenient_json import (
    DECODER,
    LenientError,
    OpenList,
    Parsed,
    TooMessy,
    fallback_values,
    finished_part,
    holds_unfinished,
    line_col,
    scan,
    unfinished,
)
from twelvefactor._partial import required_fields, view_of
from twelvefactor._plan import Member, Plan, plan_for
from twelvefactor._reply import Region, bare_value, prepare, reply_text
from twelvefactor._reply import unescape as _unescape
from twelvefactor.errors import ParseError

__all__ = ["Partial", "parse", "parse_partial"]

T = TypeVar("T")

_MAX_MESSAGE = 599
_MAX_ANSWERS = 10


@overload
def parse(text: str, schema: type[T]) -> T: ...
@overload
def parse(text: str, schema: Any) -> Any: ...
def parse(text: str, schema: Any) -> Any:
    """Turn raw model output into an instance of ``schema``, or raise :class:`ParseError`.

    ``schema`` is a pydantic model, a (discriminated) union of models, or any type a ``TypeAdapter``
    accepts. The error message is one or two sentences under 600 characters, fit to show the model;
    the error also carries ``raw`` (the full text) and ``allowed_intents``.
    """
    plan = plan_for(schema)
    try:
        return _parse(_text_of(text, plan), plan, 0)[0]
    except _Invalid as exc:
        raise _error(plan, text, exc.message) from None
    except RecursionError:
        raise _error(plan, text, "the JSON is nested too deeply") from None


class Partial(Generic[T]):
    """What :func:`parse_partial` reads of an output so far: for showing a step as it streams.

    ``complete`` is True only when the output holds a whole answer -- a closed JSON object or array
    that validates -- and ``value`` is then the instance :func:`parse` returns. Otherwise ``value`` is a
    view for display, never an answer: the JSON-like data read so far in the schema's spellings (a
    string cut short shows its text so far; a number or word cut mid-token is left out), or None when
    nothing is read yet; and ``missing`` names the required fields not complete yet. Act on
    :func:`parse` of the finished output, never on a partial.
    """

    __slots__ = ("value", "complete", "missing")

    def __init__(self, value: Any, complete: bool, missing: list[str]) -> None:
        self.value: Any = value
        self.complete = complete
        self.missing = missing

    def __repr__(self) -> str:
        return f"Partial(value={self.value!r}, complete={self.complete}, missing={self.missing!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Partial):
            return NotImplemented
        return (self.value, self.complete, self.missing) == (other.value, other.complete, other.missing)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dicts it holds


@overload
def parse_partial(text: str, schema: type[T]) -> Partial[T]: ...
@overload
def parse_partial(text: str, schema: Any) -> Partial[Any]: ...
def parse_partial(text: str, schema: Any) -> Partial[Any]:
    """Read an output still being written (a stream so far) against ``schema``; see :class:`Partial`.

    Raises :class:`ParseError` only where more output cannot help: a whole answer that does not
    validate, or two answers. An output that has not reached its answer yet (a reasoning block, prose)
    gives ``Partial(None, complete=False, missing=[...])``.
    """
    plan = plan_for(schema)
    text = _text_of(text, plan)
    if _still_reasoning(text):
        return Partial(None, False, required_fields(plan.shape))  # its drafts are no answers yet
    if plan.text:
        return Partial(reply_text(text) or None, False, [])  # text has no end mark: never complete
    try:
        answer, whole = _parse(text, plan, 0)
    except _Invalid as exc:
        so_far = _so_far(text, plan)
        if exc.final or (so_far is None and exc.settled):
            raise _error(plan, text, exc.message) from None
        return so_far or Partial(None, False, required_fields(plan.shape))
    except RecursionError:
        raise _error(plan, text, "the JSON is nested too deeply") from None
    if whole:
        return Partial(answer, True, [])
    # Read from a value the end cut (its missing part optional), or from prose: more may follow.
    return _so_far(text, plan) or Partial(plan.adapter.dump_python(answer, mode="json"), False, [])


def _still_reasoning(text: str) -> bool:
    return "<" in text and prepare(text).unclosed_reasoning


def _so_far(text: str, plan: Plan) -> Partial[Any] | None:
    """The view of the answer the end of the output cut, if it cut one."""
    try:
        regions = prepare(text).regions
        cut: tuple[Parsed, str | None] | None = None
        for region in regions:
            candidates, _ = scan(region.text)
            if candidates and candidates[-1].truncated:
                cut = candidates[-1], region.tool
    except TooMessy:
        return None
    if cut is None:
        return None
    parsed, tool = cut
    value = parsed.value
    if tool is not None and plan.intents is not None and plan.intents.find(tool):
        value = {"name": tool, "arguments": value}
    if plan.unwraps:
        value = unwrap(plan.inner, value)
    shown, missing = view_of(plan.shape, plan.shape.coerce(value))
    return Partial(shown, False, missing)


def _text_of(text: Any, plan: Plan) -> str:
    if isinstance(text, bytes | bytearray):
        return text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise _error(plan, "", f"expected the model's reply as text, got {type(text).__name__}")
    return text


# --- validating one candidate -------------------------------------------------------------------


class _Invalid(Exception):
    """One candidate does not fit the schema; ``message`` says why, for the model."""

    def __init__(self, message: str, missing: Sequence[str] = (), *, final: bool = False, cut: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = list(missing)
        self.final = final  # an ambiguity: report it even if another candidate is valid
        self.cut = cut  # already says what the end of the output cut
        self.settled = final  # more output cannot fix it: parse_partial reports it rather than wait


def _parse(text: str, plan: Plan, depth: int) -> tuple[Any, bool]:
    """(the answer, whether it is whole: a closed JSON object or array)."""
    if plan.text:
        return _text_answer(text, plan), False
    stripped = text.strip()
    if stripped:
        try:
            value = DECODER.decode(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, str) and not plan.scalar and depth < 2:
                try:
                    return _parse(value, plan, depth + 1)  # the whole answer was written as a JSON string
                except _Invalid:
                    if not plan.lone:
                        raise
                    # "hello" for a class with one required field: the string is that field.
            if isinstance(value, str) and plan.prose:
                return _scalar_reading(value, plan), False
            try:
                return _evaluate(value, plan), isinstance(value, dict | list)
            except _Invalid as exc:
                exc.settled = True  # the whole output is this one JSON value
                raise
    return _parse_messy(text, plan)


def _scalar_reading(text: str, plan: Plan) -> Any:
    """A number, boolean or choice written without JSON: the text as a value, else the one value it names."""
    found = _Found()
    _consider_scalar(text, plan, found)
    if found.results:
        return found.results[0]
    raise max(found.failures, key=lambda f: f.score).error


def _consider_scalar(text: str, plan: Plan, found: _Found) -> None:
    _consider(bare_value(text), None, plan, found)
    if found.results or not plan.prose:
        return
    prose = plan.inner.in_prose(text)  # type: ignore[attr-defined]  # plan.prose says it has one
    if len(prose.values) > 1:
        shown = ", ".join(_shown(v) for v in prose.values[:5])
        raise _Invalid(
            f"the reply names {len(prose.values)} different values ({_clip(shown, 200)}); reply with exactly one",
            final=True,
        )
    if prose.negated:
        raise _Invalid("the reply names a value only to deny it (not ...); reply with the value itself", final=True)
    if prose.values:
        _consider(Parsed(prose.values[0], 0, len(text)), None, plan, found)


def _shown(value: Any) -> str:
    return value.name if isinstance(value, Enum) else _snip(value, 40)


def _text_answer(text: str, plan: Plan) -> Any:
    """A str schema reads the reply as text: one JSON string gives its content, anything else (an
    object or a list included) is the text as written, without reasoning blocks or an outer fence."""
    value: str | None = reply_text(text)
    if not value:
        raise _Invalid("the output is empty; reply with the text")
    if isinstance(plan.shape, OptionalShape) and value in ("null", "None"):
        value = None
    try:
        return plan.adapter.validate_python(value)
    except ValidationError as exc:
        raise _describe(exc, plan, value) from None


def _evaluate(value: Any, plan: Plan, truncated: bool = False) -> Any:
    if plan.unwraps:
        value = unwrap(plan.inner, value)
    if plan.wants_object and isinstance(value, list) and len(value) > 1:
        return _evaluate_many(value, plan, truncated)
    if plan.members:
        return _validate_members(value, plan, truncated)
    coerced = plan.shape.coerce(value)
    if truncated:
        coerced = _settle(plan.shape, coerced)
    try:
        return plan.adapter.validate_python(coerced)
    except ValidationError as exc:
        raise _describe(exc, plan, coerced) from None


def _settle(shape: Shape, value: Any) -> Any:
    """A value the end of the output cut: keep what the schema can use whole, or say what was cut."""
    try:
        value = shape.settle(value)
    except CutOff as cut:
        raise _truncated(cut) from None
    if holds_unfinished(value):  # every shape settles its own parts; this is the guarantee, not the rule
        raise _truncated(CutOff([]))
    return value


def _truncated(cut: CutOff) -> _Invalid:
    where = ".".join(str(p) for p in cut.path)
    retry = "reply again with a complete, shorter JSON object"
    if not where:
        return _Invalid(f"the output looks truncated: it ends before the JSON value is closed; {retry}", cut=True)
    if cut.never_written:
        message = f"the output looks truncated (it ends inside the JSON object) and required field {where!r} is missing"
    else:
        message = f"the output looks truncated: it ends inside required field {where!r}"
    return _Invalid(f"{message}; {retry}", [where], cut=True)


def _evaluate_many(values: list[Any], plan: Plan, truncated: bool = False) -> Any:
    """An array where one object is expected: fine if it repeats one answer, an error otherwise."""
    results = []
    failures: list[tuple[Attempt | None, _Invalid]] = []
    for value in values:
        try:
            results.append(_evaluate(value, plan, truncated))
        except _Invalid as exc:
            shown = finished_part(value) if truncated else value
            failures.append((attempted_step(shown, plan.intents, plan.models), exc))
    distinct = _distinct(results)
    if len(distinct) > 1:
        raise _ambiguous(distinct, plan)
    if distinct:
        others = _other_steps(distinct[0], failures)
        if others:
            raise _several_steps(distinct[0], others, plan)
        if not failures:
            return distinct[0]
    raise _Invalid(f"expected one JSON object, got an array of {len(values)} items")


def _validate_members(value: Any, plan: Plan, truncated: bool) -> Any:
    """A plain union: pick the one member that fits best, refuse a tie."""
    intents = plan.intents
    value = objectify(value)
    if intents is not None and isinstance(value, dict):
        tagged = _validate_tagged(value, intents, plan, truncated)
        if tagged is not _NO_TAG:
            return tagged
    members = _members_for(value, plan)
    if truncated and holds_unfinished(value):
        # What was cut may be what tells the members apart: refuse rather than guess from the rest.
        raise _Invalid(
            f"the output looks truncated, and what it holds does not tell which of {_names(plan.members)} "
            "it is; reply again with a complete, shorter JSON object",
            cut=True,
        )
    fits: list[tuple[tuple[int, int, int], Member, Any]] = []
    failures: list[tuple[int, Member, ValidationError, Any]] = []
    for member in members:
        data = member.shape.coerce(copy.deepcopy(value))
        try:
            result = member.adapter.validate_python(data)
        except ValidationError as exc:
            failures.append((exc.error_count(), member, exc, data))
            continue
        fits.append((_rank(member, result, value), member, result))
    if not fits:
        if intents is not None and isinstance(value, dict):
            raise _Invalid(_missing_tag(intents.key, value))
        _, member, closest, data = min(failures, key=lambda f: f[0])
        parts, missing = _clauses(closest, plan, data)
        detail = "; ".join(parts)
        raise _Invalid(f"fits none of {_names(plan.members)}; closest is {member.name}: {detail}", missing)
    fits.sort(key=lambda f: f[0], reverse=True)
    if len(fits) > 1 and fits[0][0] == fits[1][0]:
        tied = [f[1].name for f in fits if f[0] == fits[0][0]]
        raise _Invalid(
            f"the JSON fits {' and '.join(tied)} equally well; add the fields that tell them apart",
            final=True,
        )
    try:
        return plan.adapter.validate_python(fits[0][2])
    except ValidationError as exc:
        raise _describe(exc, plan, fits[0][2]) from None


_NO_TAG: Any = object()


def _validate_tagged(value: dict[Any, Any], intents: Intents, plan: Plan, truncated: bool) -> Any:
    """The member a plain union's object names by its intent, validated; ``_NO_TAG`` if it names none."""
    resolved = resolve_intent(value, intents)
    if resolved is not None and resolved[1].cls in plan.by_class:
        member = plan.by_class[resolved[1].cls]
        data = resolved[1].coerce_fields(resolved[0])
        if truncated:
            data = _settle(resolved[1], data)
        try:
            return plan.adapter.validate_python(member.adapter.validate_python(data))
        except ValidationError as exc:
            raise _describe(exc, plan, data) from None
    if unfinished(value.get(intents.key)):
        raise _truncated(CutOff([intents.key]))
    if intents.key in value:
        raise _Invalid(f"unknown {intents.key} {_snip(value[intents.key])}")
    return _NO_TAG


def _members_for(value: Any, plan: Plan) -> list[Member]:
    if isinstance(value, dict | list):
        return list(plan.members)
    # A bare scalar is no model: wrapping it into a one-field member would be a second reading.
    members = [m for m in plan.members if not isinstance(m.shape, ModelShape)]
    if not members:
        raise _Invalid(f"expected a JSON object, got {_snip(value, 40)}")
    return members


def _rank(member: Member, result: Any, original: Any) -> tuple[int, int, int]:
    """(input keys used, same type and value as the input, the raw input validates in strict mode)."""
    keys = len(result.model_fields_set) if isinstance(result, BaseModel) else 0
    exact = not isinstance(result, BaseModel) and type(result) is type(original) and result == original
    try:
        member.adapter.validate_python(original, strict=True)
        strict = True
    except ValidationError:
        strict = False
    return keys, int(exact), int(strict)


def _other_steps(answer: Any, failures: Iterable[tuple[Attempt | None, _Invalid]]) -> list[tuple[Attempt, str]]:
    """The failed candidates that still read as next steps besides ``answer``, each distinct one once.

    One that only repeats part of the answer (a copy cut off by max tokens, the bare intent named in
    passing) is the same step, not another.
    """
    others: list[tuple[Attempt, str]] = []
    for step, error in failures:
        if step is None or (step.known and _part_of(step.data, answer)):
            continue
        if not any(step.name == seen.name and step.data == seen.data for seen, _ in others):
            others.append((step, error.message))
    return others


def _part_of(data: dict[Any, Any], answer: Any) -> bool:
    """Every member of ``data`` agrees with ``answer``: merged into it, it gives the same answer back."""
    if not isinstance(answer, BaseModel):
        return False
    try:
        dumped = answer.model_dump(by_alias=True)
        return data.keys() <= dumped.keys() and type(answer).model_validate({**dumped, **data}) == answer
    except (ValueError, TypeError):  # ValidationError, a serializer or validator refusing: not the same
        return False


def _distinct(results: list[Any]) -> list[Any]:
    distinct: list[Any] = []
    for result in results:
        if not any(result == seen for seen in distinct):
            distinct.append(result)
            if len(distinct) >= _MAX_ANSWERS:
                break
    return distinct


# --- the messy path -----------------------------------------------------------------------------


# {\"intent\": ...}: a string's content, escapes and all. Rarely needed: re's own cache compiles it once.
_ESCAPED_OBJECT = r'[{\[](?:\s|\\[nrt])*\\"'


class _Failure:
    __slots__ = ("parsed", "error", "step", "score")

    def __init__(self, parsed: Parsed, error: _Invalid, step: Attempt | None, score: tuple[int, ...]) -> None:
        self.parsed = parsed
        self.error = error
        self.step = step  # what it was meant as, if it reads as an answer at all
        self.score = score


class _Found:
    __slots__ = ("results", "whole", "failures", "errors")

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.whole: list[bool] = []  # per result: read from a closed JSON object or array
        self.failures: list[_Failure] = []
        self.errors: list[tuple[str, LenientError]] = []  # (region text, error)


def _parse_messy(text: str, plan: Plan) -> tuple[Any, bool]:
    prepared = prepare(text)
    found = _Found()
    try:
        _collect(prepared.regions, plan, found)
        if not found.results and re.search(_ESCAPED_OBJECT, text):
            _collect([Region(_unescape(r.text), r.tool) for r in prepared.regions], plan, found)
        if not found.results and not found.failures and not plan.scalar:
            for region in prepared.regions:
                for parsed in fallback_values(region.text):
                    _consider(parsed, region.tool, plan, found)
    except TooMessy as exc:
        raise _Invalid(f"{exc.reason}; reply with exactly one JSON object") from None
    if not found.results and not found.failures and plan.scalar:
        _consider_scalar(prepared.regions[-1].text, plan, found)
    distinct = _distinct(found.results)
    extra = " (the <think> block was never closed)" if prepared.unclosed_reasoning else ""
    if len(distinct) > 1:
        raise _ambiguous(distinct, plan, extra)
    if distinct:
        others = _other_steps(distinct[0], ((f.step, f.error) for f in found.failures))
        if others:
            raise _several_steps(distinct[0], others, plan, extra)
        whole = any(w for result, w in zip(found.results, found.whole, strict=True) if result == distinct[0])
        return distinct[0], whole
    if found.failures:
        best = max(found.failures, key=lambda f: f.score)
        error = _explain_failure(best)
        error.settled = best.step is not None and not best.parsed.truncated  # an answer, whole and wrong
        raise error
    if found.errors:
        source, err = max(found.errors, key=lambda e: e[1].pos - e[1].start)
        line, col = line_col(source, err.pos)
        near = _snip(source[max(0, err.pos - 15) : err.pos + 15])
        raise _Invalid(f"invalid JSON at line {line}, column {col} (near {near}): {err.reason}")
    if not text.strip():
        raise _Invalid("the output is empty; reply with exactly one JSON object")
    where = " outside the reasoning block" if prepared.reasoning_had_json else ""
    raise _Invalid(f"no JSON object found{where}; reply with exactly one JSON object")


def _collect(regions: list[Region], plan: Plan, found: _Found) -> None:
    candidates: list[tuple[Parsed, str | None]] = []
    for region in regions:
        parsed, errors = scan(region.text)
        found.errors.extend((region.text, err) for err in errors)
        candidates.extend((p, region.tool) for p in parsed)
    if plan.many and len(candidates) > 1 and all(isinstance(p.value, dict) for p, _ in candidates):
        # {"k": 1} {"k": 2} where a list is wanted: both are items (both answers kept, none dropped).
        _consider(_joined([p for p, _ in candidates]), None, plan, found)
        return
    for parsed_value, tool in candidates:
        _consider(parsed_value, tool, plan, found)


def _joined(items: list[Parsed]) -> Parsed:
    """Several objects as one list; left open if the last was cut, since more items could have followed."""
    truncated = items[-1].truncated
    values = [p.value for p in items]
    return Parsed(OpenList(values) if truncated else values, items[0].start, items[-1].end, truncated)


def _consider(parsed: Parsed, tool: str | None, plan: Plan, found: _Found) -> None:
    value = parsed.value
    intents = plan.intents
    if tool is not None and intents is not None and intents.find(tool):
        value = {"name": tool, "arguments": value}  # markup named the tool: <function=add>{...}
    try:
        found.results.append(_evaluate(value, plan, parsed.truncated))
        found.whole.append(not parsed.truncated and isinstance(parsed.value, dict | list))
    except _Invalid as exc:
        if exc.final:
            raise
        # What it was meant as is read off its finished part (evaluating may have reshaped `value`).
        shown = finished_part(parsed.value) if parsed.truncated else parsed.value
        if tool is not None and intents is not None:
            # Markup naming a tool is a call, even of a tool the schema lacks.
            shown = {"name": tool, "arguments": shown}
        step = attempted_step(shown, intents, plan.models)
        found.failures.append(_Failure(parsed, exc, step, _score(shown, plan, parsed, step)))


def _score(value: Any, plan: Plan, parsed: Parsed, step: Attempt | None) -> tuple[int, ...]:
    """Which failed candidate the model most likely meant as its answer (for the error message)."""
    inner = objectify(value)
    named = plan.intents is not None and isinstance(inner, dict) and plan.intents.key in inner
    return int(step is not None), int(named), int(isinstance(inner, dict)), parsed.end - parsed.start


def _explain_failure(failure: _Failure) -> _Invalid:
    error = failure.error
    if failure.parsed.truncated and error.missing and not error.cut:
        fields = ", ".join(repr(m) for m in error.missing[:3])
        return _Invalid(
            f"the output looks truncated (it ends inside the JSON object) and required field {fields} "
            "is missing; reply again with a complete, shorter JSON object"
        )
    return error


# --- messages -----------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snip(value: Any, limit: int = 60) -> str:
    """A value quoted for a message, cut short: models echo long inputs."""
    return repr(_clip(value, limit)) if isinstance(value, str) else _clip(repr(value), limit)


def _names(members: Sequence[Member]) -> str:
    return ", ".join(m.name for m in members)


def _ambiguous(distinct: list[Any], plan: Plan, extra: str = "") -> _Invalid:
    count = f"at least {len(distinct)}" if len(distinct) >= _MAX_ANSWERS else str(len(distinct))
    key = plan.intents.key if plan.intents is not None else None
    labels = [str(getattr(r, key, "?")) for r in distinct] if key else []
    what = f" ({', '.join(labels)})" if labels else ""
    return _Invalid(
        f"found {count} different answers{what}{extra}; only one next step is allowed, "
        "reply with exactly one JSON object",
        final=True,
    )


def _several_steps(answer: Any, others: list[tuple[Attempt, str]], plan: Plan, extra: str = "") -> _Invalid:
    """One valid answer and other candidates meant as answers too: never drop one silently."""
    key = plan.intents.key if plan.intents is not None else None
    labels = [str(getattr(answer, key, "?")) if key else type(answer).__name__]
    for step, message in others:
        if not step.known:
            labels.append(f"{_snip(step.name, 40)}, not an allowed {key}")
        else:
            reason = message.removeprefix("invalid next step: ").removeprefix("invalid output: ")
            labels.append(f"{_clip(step.name, 40)}, invalid: {_clip(reason, 60)}")
    what = "next steps" if key else "answers"
    return _Invalid(
        f"the output holds {len(labels)} {what} ({_clip('; '.join(labels), 250)}){extra}; only one "
        f"{what[:-1]} is allowed, reply with exactly one JSON object",
        final=True,
    )


def _missing_tag(key: str, data: Any) -> str:
    if isinstance(data, dict):
        # A tool-call envelope whose name is not an intent: say so rather than "missing intent".
        for name_key in NAME_KEYS:
            name = data.get(name_key)
            if isinstance(name, str):
                return f"unknown {key} {_snip(name)} (in {name_key!r})"
    return f"missing {key!r}: say which intent this is"


_OBJECT_ERRORS = frozenset({"model_type", "dict_type", "model_attributes_type"})


def _describe(exc: ValidationError, plan: Plan, data: Any) -> _Invalid:
    """Pydantic's errors, one short clause each, without URLs or input dumps."""
    parts, missing = _clauses(exc, plan, data)
    prefix = "invalid next step: " if plan.intents is not None else "invalid output: "
    return _Invalid(prefix + "; ".join(parts), missing)


def _clauses(exc: ValidationError, plan: Plan, data: Any) -> tuple[list[str], list[str]]:
    key = plan.intents.key if plan.intents is not None else "intent"
    tag = data.get(key) if isinstance(data, dict) else None
    parts: list[str] = []
    missing: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors[:3]:
        # Drop pydantic's internal steps such as "function-after[check(), Add]".
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.endswith("]") and "[" in p)]
        if plan.tagged and loc and loc[0] == tag:
            loc = loc[1:]
        where = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "union_tag_invalid" or (where == key and kind == "literal_error"):
            parts.append(f"unknown {key} {_snip(err['input'] if where else tag)}")
        elif kind == "union_tag_not_found":
            parts.append(_missing_tag(key, data))
        elif kind == "missing":
            missing.append(where)
            parts.append(f"field {where!r} is required")
        elif not where and kind in _OBJECT_ERRORS:
            parts.append(f"expected a JSON object, got {_snip(err['input'], 40)}")
        else:
            got = err.get("input")
            shown = f" (got {_snip(got, 40)})" if isinstance(got, str | int | float) else ""
            label = f"field {where!r}: " if where else ""
            parts.append(f"{label}{_clip(err['msg'], 120)}{shown}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return parts, missing


def _error(plan: Plan, raw: str, message: str) -> ParseError:
    message = " ".join(message.split())
    if len(message) > 400:
        message = message[:399] + "…"
    if plan.intents is not None and plan.intents.names:
        listed = f"; allowed intents: {', '.join(plan.intents.names)}"
        room = _MAX_MESSAGE - len(message)
        message += listed if len(listed) <= room else listed[: room - 1] + "…"
    err = ParseError(message)
    vars(err).update(raw=raw, allowed_intents=list(plan.intents.names) if plan.intents else [])
    return err
