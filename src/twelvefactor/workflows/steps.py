"""What a workflow step is: a name, an effect kind, JSON arguments to record, and how to call it.

A step is a plain function (``wf.step(fetch_prs, repo)``) or a Tool instance
(``wf.step(DeployBackend(environment="staging", tag=tag))``): a tool brings its own effect kind,
``reconcile`` hook and approval rule; a function gets them from ``wf.step``'s keywords.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import JsonValue, TypeAdapter
from pydantic_core import to_jsonable_python

from twelvefactor.errors import ToolError, UserError
from twelvefactor.tools import EFFECTS, Effect, Reconciled, Tool, ToolContext, arguments_of, execute

ReconcileHook = Callable[[ToolContext], Reconciled]


@dataclass(frozen=True)
class StepSpec:
    name: str
    effect: Effect
    arguments: dict[str, JsonValue]
    call: Callable[[ToolContext], Any]
    reconcile: ReconcileHook | None = None
    approval: bool = False
    returns: TypeAdapter[Any] | None = None

    def load(self, recorded: JsonValue) -> Any:
        """The step's value from its recorded JSON result: the first run returns exactly what a replay does."""
        return recorded if self.returns is None else self.returns.validate_python(recorded)


def spec_of(
    target: Callable[..., Any] | Tool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None,
    effect: Effect | None,
    reconcile: ReconcileHook | None,
) -> StepSpec:
    if effect is not None and effect not in EFFECTS:
        raise UserError(f"effect {effect!r} is not one of {', '.join(EFFECTS)}")
    if isinstance(target, Tool):
        if args or kwargs:
            raise UserError(f"step {type(target).intent_name()!r}: a Tool carries its arguments; pass none")
        return _tool_spec(target, name, effect, reconcile)
    if not callable(target):
        raise UserError(f"wf.step() takes a function or a Tool instance, got {type(target).__name__}")
    return _function_spec(target, args, kwargs, name, effect, reconcile)


def _tool_spec(tool: Tool, name: str | None, effect: Effect | None, reconcile: ReconcileHook | None) -> StepSpec:
    cls = type(tool)
    hook = reconcile or (tool.reconcile if cls.reconcile is not Tool.reconcile else None)
    if not cls.is_executable():
        raise UserError(f"tool {cls.intent_name()!r} has no run(): a workflow step must be something it can run")
    return StepSpec(
        name=name or cls.intent_name(),
        effect=effect or cls.effect,
        arguments=arguments_of(tool),
        call=lambda ctx: execute(tool, ctx),
        reconcile=hook,
        approval=tool.approval_required(),
    )


def _function_spec(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str | None,
    effect: Effect | None,
    reconcile: ReconcileHook | None,
) -> StepSpec:
    step_name = name or getattr(fn, "__name__", "")
    if not step_name or step_name == "<lambda>":
        raise UserError("a workflow step needs a name: pass name='...' for a lambda or a callable object")
    signature = inspect.signature(fn)
    hints = _hints(fn)
    context_param = next((p for p in signature.parameters if hints.get(p) is ToolContext), None)
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise UserError(f"step {step_name!r}: {exc}") from exc
    arguments = {key: _jsonable(value) for key, value in bound.arguments.items() if key != context_param}

    def call(ctx: ToolContext) -> Any:
        extra = {context_param: ctx} if context_param is not None else {}
        try:
            return fn(*args, **kwargs, **extra)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - the step's failure is recorded and raised as StepFailed
            from twelvefactor.tools import compact_exception

            raise ToolError(compact_exception(exc)) from exc

    returns = hints.get("return")
    return StepSpec(
        name=step_name,
        effect=effect or "irreversible",
        arguments=arguments,
        call=call,
        reconcile=reconcile,
        returns=_adapter(returns) if returns not in (None, type(None), Any) else None,
    )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: the step's value stays plain JSON
        return {}


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        known = _ADAPTERS.get(annotation)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(annotation)
    if known is None:
        known = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return known


def _jsonable(value: Any) -> JsonValue:
    try:
        return to_jsonable_python(value)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - arguments are recorded to be read; a repr is enough
        return repr(value)


def jsonable_result(name: str, value: Any) -> JsonValue:
    try:
        return to_jsonable_python(value)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001
        raise ToolError(f"step {name!r} returned a {type(value).__name__}, which is not JSON-serialisable") from exc
