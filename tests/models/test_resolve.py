"""Model strings, presets, the local: seam, and what `import twelvefactor` loads."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import twelvefactor.models
from twelvefactor import Agent, UserError
from twelvefactor.models import PRESETS, AnthropicModel, OpenAIModel, resolve_model

LOCAL = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "VLLM_BASE_URL", "OLLAMA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-openai-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-anthropic-0000")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-env-openrouter-0000")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-env-key-0000")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        ("openai:gpt-4o-mini", "https://api.openai.com/v1/chat/completions"),
        ("azure:my-deployment", "https://res.openai.azure.com/openai/v1/chat/completions"),
        ("openrouter:anthropic/claude-sonnet-4.5", "https://openrouter.ai/api/v1/chat/completions"),
        ("vllm:Qwen/Qwen2.5-7B-Instruct", "http://localhost:8000/v1/chat/completions"),
        ("ollama:llama3.2", "http://localhost:11434/v1/chat/completions"),
        ("lmstudio:qwen2.5-7b-instruct", "http://localhost:1234/v1/chat/completions"),
        ("llamacpp:any", "http://localhost:8080/v1/chat/completions"),
        ("llama-cpp-python:smollm2", "http://localhost:8000/v1/chat/completions"),
        ("anthropic:claude-sonnet-4-5", "https://api.anthropic.com/v1/messages"),
    ],
)
def test_every_documented_model_string_resolves(spec: str, url: str) -> None:
    model = resolve_model(spec)
    assert isinstance(model, OpenAIModel | AnthropicModel)
    assert model.name == spec and model.request_url() == url


def test_options_reach_the_provider_and_env_base_urls_win_over_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    model = resolve_model("openai:gpt-4o", max_tokens=512, temperature=0.2)
    assert isinstance(model, OpenAIModel) and model.max_tokens == 512 and model.temperature == 0.2
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://gpu-box:11434/v1")
    assert resolve_model("ollama:llama3.2").request_url() == "http://gpu-box:11434/v1/chat/completions"  # type: ignore[attr-defined]
    assert sorted(PRESETS) == sorted(
        ["openai", "azure", "openrouter", "vllm", "ollama", "lmstudio", "llamacpp", "llama-cpp-python"]
    )


def test_an_agent_takes_a_model_string() -> None:
    agent = Agent("a", model="anthropic:claude-haiku-4-5", output_mode="json_schema")
    assert isinstance(agent.model, AnthropicModel) and agent.output_mode == "json_schema"
    with pytest.raises(UserError, match="output_mode 'native' is not one of prompted, json_schema, tools"):
        Agent("a", output_mode="native")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4o", "is not PROVIDER:MODEL; for example openai:gpt-4o-mini"),
        ("openai:", "is not PROVIDER:MODEL"),
        ("mistral:large", "unknown model provider 'mistral'"),
        ("local:/models/x.gguf", "no such file" if LOCAL else "runs a GGUF model in-process with llama-cpp-python"),
    ],
)
def test_bad_model_strings_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(
        UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        resolve_model(spec)


def test_a_model_object_passes_through() -> None:
    from twelvefactor import ScriptedModel

    model = ScriptedModel([])
    assert resolve_model(model) is model


def test_the_models_package_surface_is_pinned_and_sorted() -> None:
    assert twelvefactor.models.__all__ == sorted(twelvefactor.models.__all__)
    for name in twelvefactor.models.__all__:
        assert getattr(twelvefactor.models, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        twelvefactor.models.Nope  # noqa: B018


def test_importing_the_library_does_not_import_httpx_or_any_provider() -> None:
    code = (
        "import sys, twelvefactor, twelvefactor.models;"
        " print(sorted(m for m in sys.modules if m in ('httpx', 'httpcore') or m.startswith('twelvefactor.models.')"
        " and m.split('.')[-1] not in ('base', 'testing', 'errors')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_httpx_loads_when_a_provider_is_constructed_not_when_its_module_is_imported() -> None:
    code = (
        "import sys; from twelvefactor.models import OpenAIModel; a = 'httpx' in sys.modules;"
        " OpenAIModel('m', preset='ollama'); print(a, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
