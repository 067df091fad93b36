"""twelvefactor: reliable LLM agents the 12-factor way.

The model turns natural language into ONE structured next step; you own the prompt, the context window
and the control flow; a thread of typed events is the only state.
"""

from typing import TYPE_CHECKING, Any

from twelvefactor.agent import Agent, consecutive_errors
from twelvefactor.calls import EventLoopCalls
from twelvefactor.compaction import ContextBudget, DropOldEvents, ShortenToolResults, Summarize
from twelvefactor.context import (
    ChatFormat,
    ContextFormat,
    JsonFormat,
    XmlFormat,
    estimate_tokens,
    redact_patterns,
    visible_events,
)
from twelvefactor.errors import (
    AuthenticationError,
    CassetteError,
    CassetteMismatch,
    ChannelError,
    ConflictError,
    DatasetError,
    FactKeyTaken,
    FactNotFound,
    ForgedToken,
    IdempotencyKeyReused,
    LinkError,
    MailRejected,
    MalformedToken,
    ModelCancelled,
    ModelError,
    ModelRequestsForbidden,
    NotWaitingError,
    ParseError,
    PlotsUnavailable,
    ProviderError,
    RetrievalError,
    SignatureError,
    SignInRequired,
    SSEFieldError,
    StepFailed,
    StoreBusyError,
    StoreCorruptionError,
    StoreError,
    StoreNotWritable,
    TextTooLong,
    ThreadLeased,
    ThreadNotFound,
    TokenError,
    ToolError,
    TwelveFactorError,
    UnknownAgentError,
    UserError,
    WorkflowChanged,
)
from twelvefactor.events import (
    Compaction,
    CustomEvent,
    Done,
    Error,
    Event,
    HumanRequest,
    HumanResponse,
    MemoryFact,
    ModelCall,
    Retrieved,
    RetrievedDocument,
    SentMessage,
    ToolCall,
    ToolReconciled,
    ToolResult,
    ToolStarted,
    UserMessage,
    Wait,
)
from twelvefactor.loop import arun, complete_tool_call, next_action, pending_tool_call, run, with_tool_result
from twelvefactor.models import (
    AsyncModel,
    FunctionModel,
    Message,
    Model,
    ModelResponse,
    ScriptedModel,
    StreamingModel,
    TestModel,
    forbid_real_requests,
)
from twelvefactor.parsing import parse, parse_partial
from twelvefactor.prompts import Prompt
from twelvefactor.schema import render_intents
from twelvefactor.schema_tools import tool_from_schema, tools_from_definitions
from twelvefactor.sent import sent_messages, sent_request
from twelvefactor.spend import SpendBudget, spend
from twelvefactor.thread import Delta, Status, Thread, fork, reduce, replay, respond
from twelvefactor.tokens import count_tokens
from twelvefactor.tools import DoneForNow, Effect, Reconciled, RequestHumanInput, Tool, ToolContext, tool
from twelvefactor.window import Window

if TYPE_CHECKING:
    from twelvefactor.memory import Memory, memory_scope
    from twelvefactor.store import MemoryStore, PostgresStore, SQLiteStore, ThreadStore, memory_backend_for, open_store
    from twelvefactor.workflows import Approval, Flow, Workflow, run_workflow, workflow

__version__ = "0.1.0"

# The stores (and sqlite3) and workflows load on first use: `import twelvefactor` stays fast for code
# that never touches them, e.g. a worker that only renders prompts.
_LAZY = {"MemoryStore", "PostgresStore", "SQLiteStore", "ThreadStore", "memory_backend_for", "open_store"}
_LAZY_MEMORY = {"Memory", "memory_scope"}
_LAZY_WORKFLOWS = {"Approval", "Flow", "Workflow", "run_workflow", "workflow"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import twelvefactor.store as store

        return getattr(store, name)
    if name in _LAZY_MEMORY:
        import twelvefactor.memory as memory

        return getattr(memory, name)
    if name in _LAZY_WORKFLOWS:
        import twelvefactor.workflows as workflows

        return getattr(workflows, name)
    raise AttributeError(f"module 'twelvefactor' has no attribute {name!r}")


__all__ = [
    "Agent",
    "Approval",
    "AsyncModel",
    "AuthenticationError",
    "CassetteError",
    "CassetteMismatch",
    "ChannelError",
    "ChatFormat",
    "Compaction",
    "ConflictError",
    "ContextBudget",
    "ContextFormat",
    "CustomEvent",
    "DatasetError",
    "Delta",
    "Done",
    "DoneForNow",
    "DropOldEvents",
    "Effect",
    "Error",
    "Event",
    "EventLoopCalls",
    "FactKeyTaken",
    "FactNotFound",
    "Flow",
    "ForgedToken",
    "FunctionModel",
    "HumanRequest",
    "HumanResponse",
    "IdempotencyKeyReused",
    "JsonFormat",
    "LinkError",
    "MailRejected",
    "MalformedToken",
    "Memory",
    "MemoryFact",
    "MemoryStore",
    "Message",
    "Model",
    "ModelCall",
    "ModelCancelled",
    "ModelError",
    "ModelRequestsForbidden",
    "ModelResponse",
    "NotWaitingError",
    "ParseError",
    "PlotsUnavailable",
    "PostgresStore",
    "Prompt",
    "ProviderError",
    "Reconciled",
    "RequestHumanInput",
    "RetrievalError",
    "Retrieved",
    "RetrievedDocument",
    "SQLiteStore",
    "SSEFieldError",
    "ScriptedModel",
    "SentMessage",
    "ShortenToolResults",
    "SignInRequired",
    "SignatureError",
    "SpendBudget",
    "Status",
    "StepFailed",
    "StoreBusyError",
    "StoreCorruptionError",
    "StoreError",
    "StoreNotWritable",
    "StreamingModel",
    "Summarize",
    "TestModel",
    "TextTooLong",
    "Thread",
    "ThreadLeased",
    "ThreadNotFound",
    "ThreadStore",
    "TokenError",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolReconciled",
    "ToolResult",
    "ToolStarted",
    "TwelveFactorError",
    "UnknownAgentError",
    "UserError",
    "UserMessage",
    "Wait",
    "Window",
    "Workflow",
    "WorkflowChanged",
    "XmlFormat",
    "arun",
    "complete_tool_call",
    "consecutive_errors",
    "count_tokens",
    "estimate_tokens",
    "forbid_real_requests",
    "fork",
    "memory_backend_for",
    "memory_scope",
    "next_action",
    "open_store",
    "parse",
    "parse_partial",
    "pending_tool_call",
    "redact_patterns",
    "reduce",
    "render_intents",
    "replay",
    "respond",
    "run",
    "run_workflow",
    "sent_messages",
    "sent_request",
    "spend",
    "tool",
    "tool_from_schema",
    "tools_from_definitions",
    "visible_events",
    "with_tool_result",
    "workflow",
]
