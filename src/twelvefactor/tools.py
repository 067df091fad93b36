"""Tools are structured outputs (factors 1 and 4).

A tool is a pydantic model with a literal ``intent``; the model's whole job is to pick one and fill in
its fields. What happens next is deterministic code: a tool with a ``run`` method is executed by the
loop, a tool without one is handed back to the caller (your control flow decides), and a tool marked
``requires_approval`` waits for a person first.

Each executable tool says what running it twice means (``effect``): ``read_only`` (run again freely),
``idempotent`` (run again with the same idempotency key) or ``irreversible`` (the default: a call that
may have run before a crash is never run blindly again; its ``reconcile`` hook, then a person,
decides). A tool receives its :class:`ToolContext` (thread, call, attempt, idempotency key) by
declaring it: a ``ctx: ToolContext`` parameter of a ``@tool`` function, or ``run(self, ctx)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, cast, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic_core import to_jsonable_python

from twelvefactor._aio import run_coroutine
from twelvefactor.errors import ToolError, UserError, compact

if TYPE_CHECKING:
    from twelvefactor.thread import Thread

Effect = Literal["read_only", "idempotent", "irreversible"]
EFFECTS: tuple[Effect, ...] = get_args(Effect)


@dataclass(frozen=True)
class ToolContext:
    """What a running tool knows about its call.

    ``idempotency_key`` is the same for every attempt of one call, across retries, resumes and
    processes (``thread_id:call_id``): pass it on (an ``Idempotency-Key`` header, a unique column) so
    the outside world can deduplicate too. ``attempt`` counts from 1. ``thread`` is the thread as it was
    when the call ran (the agent loop sets it; None elsewhere): what a tool that depends on who it works
    for reads, e.g. memory's scopes.
    """

    thread_id: str
    call_id: str
    intent: str
    attempt: int = 1
    thread: Thread | None = field(default=None, compare=False, repr=False)

    @property
    def idempotency_key(self) -> str:
        return f"{self.thread_id}:{self.call_id}"


@dataclass(frozen=True)
class Reconciled:
    """A ``reconcile`` hook's verdict on a call that may have run before a crash."""

    outcome: Literal["done", "not_run", "unknown"]
    result: Any = None

    @classmethod
    def done(cls, result: Any = None) -> Reconciled:
        """It had happened: ``result`` is recorded as the call's result."""
        return cls("done", result)

    @classmethod
    def not_run(cls) -> Reconciled:
        """It had not happened: run it (again, with the same idempotency key)."""
        return cls("not_run")

    @classmethod
    def unknown(cls) -> Reconciled:
        """Cannot tell: a person decides."""
        return cls("unknown")


class Tool(BaseModel):
    """Base class of every intent the model can choose.

    Subclass it with ``intent: Literal["name"] = "name"`` and the arguments as fields. Define
    ``run(self)`` to have the loop execute it; leave it out to receive the intent in your own code.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    requires_approval: ClassVar[bool] = False
    effect: ClassVar[Effect] = "irreversible"
    # The contact chain (server configuration: who, on which channel) that approvals and questions about this
    # tool's calls go to; None: the server's routes decide.
    contact: ClassVar[str | None] = None
    # Set by ``Agent.as_tool``: with a store, the loop runs that agent in a stored thread of its own.
    sub_agent: ClassVar[Any] = None
    # A tool that writes the agent's memory (remember, forget): the loop reads memory again after it.
    changes_memory: ClassVar[bool] = False
    # Which section of the context window its results count in (the context inspector): "retrieval" for
    # a search tool, else "history".
    context_section: ClassVar[str] = "history"

    def run(self) -> Any:
        """Execute the tool; the return value must be JSON-serialisable (pydantic models are).

        Declare ``run(self, ctx: ToolContext)`` to receive the call's context.
        """
        raise NotImplementedError

    def reconcile(self, ctx: ToolContext) -> Reconciled:
        """After a crash inside an irreversible call: did it happen? Default: cannot tell (ask a person)."""
        return Reconciled.unknown()

    def approval_required(self) -> bool:
        """Whether this call waits for a person. Override to decide per call (e.g. production only)."""
        return type(self).requires_approval

    @classmethod
    def intent_name(cls) -> str:
        return intent_of(cls)

    @classmethod
    def is_executable(cls) -> bool:
        return cls.run is not Tool.run


class RequestHumanInput(Tool):
    """Ask the person a question when the request is ambiguous or information is missing."""

    intent: Literal["request_human_input"] = "request_human_input"
    question: str = Field(description="one clear question for the person")


class Notify(Tool):
    """Tell people something that needs no answer (e.g. "the deploy to production started"); work goes on.

    Not offered by default: add it to an agent's tools. It is sent on the channels of ``contact`` (subclass
    with ``contact: ClassVar[str | None] = "team"``), or where the server's routes send notifications.
    """

    intent: Literal["notify"] = "notify"
    message: str = Field(description="the message for the people, complete in itself")


class DoneForNow(Tool):
    """Finish: everything asked for is done (or cannot be done); tell the person the outcome."""

    intent: Literal["done_for_now"] = "done_for_now"
    message: str = Field(description="the final answer or summary for the person")


BUILTIN_TOOLS: tuple[type[Tool], ...] = (RequestHumanInput, DoneForNow)


def intent_of(cls: type[BaseModel]) -> str:
    """The literal intent name of a tool class, or UserError if it has none."""
    field = cls.model_fields.get("intent")
    args = get_args(field.annotation) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise UserError(f"tool {cls.__name__} needs a field `intent: Literal['some_name'] = 'some_name'`")
    return args[0]


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    requires_approval: bool = False,
    effect: Effect = "irreversible",
    reconcile: Callable[..., Reconciled] | None = None,
) -> Any:
    """Turn a typed function into a Tool class: ``@tool`` or ``@tool(effect="read_only")``.

    The intent is the function's name (or ``name``); the parameters become the fields, the docstring
    the description the model sees. A parameter annotated ``ToolContext`` is no field: it receives the
    call's context. ``reconcile`` takes the same parameters and returns a :class:`Reconciled`.
    """
    if effect not in EFFECTS:
        raise UserError(f"effect {effect!r} is not one of {', '.join(EFFECTS)}")

    def wrap(func: Callable[..., Any]) -> type[Tool]:
        return _tool_from_function(func, name or func.__name__, requires_approval, effect, reconcile)

    return wrap(fn) if fn is not None else wrap


def _tool_from_function(
    func: Callable[..., Any],
    name: str,
    requires_approval: bool,
    effect: Effect,
    reconcile: Callable[..., Reconciled] | None,
) -> type[Tool]:
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {"intent": (Literal.__getitem__(name), name)}
    context_param: str | None = None
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise UserError(f"tool {name!r}: *args/**kwargs cannot become fields; name each parameter")
        if param.name not in hints:
            raise UserError(f"tool {name!r}: parameter {param.name!r} needs a type hint")
        if param.name.startswith("_"):
            # pydantic would make it a private attribute: gone from the schema and the call, silently.
            raise UserError(
                f"tool {name!r}: parameter {param.name!r} starts with an underscore, which the model can never see"
                f" or fill; rename it (e.g. {param.name.lstrip('_') + '_'!r})"
            )
        if hints[param.name] is ToolContext:
            context_param = param.name
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)

    names = [key for key in fields if key != "intent"]

    def call(fn: Callable[..., Any], self: Tool, ctx: ToolContext | None) -> Any:
        kwargs = {key: getattr(self, key) for key in names}
        if context_param is not None:
            kwargs[context_param] = ctx or ToolContext(thread_id="", call_id="", intent=name)
        return fn(**kwargs)

    def run(self: Tool, ctx: ToolContext | None = None) -> Any:
        return call(func, self, ctx)

    run.__wrapped_tool__ = func  # type: ignore[attr-defined]  # what is_async looks at

    class_name = "".join(part.title() for part in name.split("_")) or "Tool"
    cls = cast(
        type[Tool],
        create_model(class_name, __base__=Tool, __doc__=inspect.getdoc(func), **fields),
    )
    cls.run = run  # type: ignore[method-assign]
    if reconcile is not None:
        hook = reconcile

        def reconcile_method(self: Tool, ctx: ToolContext) -> Reconciled:
            return cast(Reconciled, call(hook, self, ctx))

        cls.reconcile = reconcile_method  # type: ignore[method-assign]
    cls.requires_approval = requires_approval
    cls.effect = effect
    cls.__module__ = func.__module__
    return cls


class Toolset:
    """The intents an agent can choose: its tools plus the built-ins, with deterministic dispatch."""

    def __init__(self, tools: Sequence[type[Tool]], *, builtins: Sequence[type[Tool]] = BUILTIN_TOOLS):
        self.tools: tuple[type[Tool], ...] = (*tools, *builtins)
        self.by_intent: dict[str, type[Tool]] = {}
        for cls in self.tools:
            if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
                raise UserError(f"{cls!r} is not a Tool class; decorate functions with @tool")
            intent = intent_of(cls)
            if intent in self.by_intent:
                raise UserError(f"two tools share the intent {intent!r}: intents must be unique")
            self.by_intent[intent] = cls

    @cached_property
    def union(self) -> Any:
        """The next-step type: a discriminated union of every intent (``parse`` validates against it)."""
        if len(self.tools) == 1:
            return self.tools[0]
        return Annotated[Union[self.tools], Field(discriminator="intent")]  # noqa: UP007

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.union)

    @property
    def intents(self) -> list[str]:
        return list(self.by_intent)

    def requires_approval(self, intent: str) -> bool:
        cls = self.by_intent.get(intent)
        return cls is not None and cls.requires_approval

    def contact(self, intent: str) -> str | None:
        """The contact chain the tool of ``intent`` names for its approvals and questions, if any."""
        cls = self.by_intent.get(intent)
        return None if cls is None else cls.contact

    def rebuild(self, intent: str, arguments: dict[str, Any]) -> Tool:
        """The tool instance a recorded ToolCall describes (used when resuming after a pause)."""
        cls = self.by_intent.get(intent)
        if cls is None:
            raise UserError(f"intent {intent!r} is not one of this agent's tools: {', '.join(self.by_intent)}")
        return cls.model_validate({"intent": intent, **arguments})


def arguments_of(intent: BaseModel) -> dict[str, Any]:
    """The JSON-ready arguments of an intent (its fields without ``intent``), as the model sent them: an
    omitted optional argument stays omitted (the tool gets its default), an explicit null stays null."""
    data: dict[str, Any] = intent.model_dump(mode="json", exclude_unset=True)
    data.pop("intent", None)
    return data


def execute(intent: Tool, ctx: ToolContext | None = None) -> Any:
    """Run a tool and return its JSON-ready result, or raise a one-line ToolError.

    An async tool (``async def run`` or an ``async def`` @tool function) is run to its end here; on an
    event loop, ``aexecute`` awaits it instead.
    """
    with _as_tool_error():
        result = _invoke(intent, ctx)
        if inspect.iscoroutine(result):
            result = run_coroutine(result)
    return _jsonable(intent, result)


async def aexecute(intent: Tool, ctx: ToolContext | None = None) -> Any:
    """``execute`` on an event loop: an async tool is awaited; a synchronous one runs inline (the caller
    decides whether it belongs in a thread, see ``is_async``)."""
    with _as_tool_error():
        result = _invoke(intent, ctx)
        if inspect.isawaitable(result):
            result = await result
    return _jsonable(intent, result)


def is_async(cls: type[Tool]) -> bool:
    """Whether the tool's ``run`` is a coroutine function (an async tool): awaited, never given a thread."""
    known = _IS_ASYNC.get(cls)
    if known is None:
        run = cls.run
        known = _IS_ASYNC[cls] = inspect.iscoroutinefunction(getattr(run, "__wrapped_tool__", run))
    return known


_IS_ASYNC: dict[type[Tool], bool] = {}


@contextmanager
def _as_tool_error() -> Iterator[None]:
    """Any failure of a tool's own code becomes a one-line ToolError (what goes back to the model)."""
    try:
        yield
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any tool failure goes back to the model, compacted
        raise ToolError(compact_exception(exc)) from exc


def _invoke(intent: Tool, ctx: ToolContext | None) -> Any:
    return cast(Any, intent).run(ctx) if ctx is not None and _takes_context(type(intent)) else intent.run()


def _jsonable(intent: Tool, result: Any) -> Any:
    try:
        return to_jsonable_python(result)
    except Exception as exc:  # noqa: BLE001
        raise ToolError(
            f"tool {intent_of(type(intent))!r} returned a {type(result).__name__}, which is not JSON-serialisable"
        ) from exc


_TAKES_CONTEXT: dict[type[Tool], bool] = {}


def _takes_context(cls: type[Tool]) -> bool:
    """Whether ``cls.run`` accepts the context (``run(self, ctx)``); cached per class."""
    known = _TAKES_CONTEXT.get(cls)
    if known is None:
        params = list(inspect.signature(cls.run).parameters.values())[1:]
        known = _TAKES_CONTEXT[cls] = bool(params) and params[0].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    return known


def compact_exception(exc: BaseException, limit: int = 300) -> str:
    """``ExcType: message`` on one line, cut to ``limit`` characters: no stack trace in the context."""
    return compact(f"{type(exc).__name__}: {str(exc) or '(no message)'}", limit)
