"""Every code block in README.md runs as written: a newcomer's first hour, replayed from the README itself.

Python blocks are executed in a temporary folder, next to the files the README's own ``jinja FILE`` blocks
define. Bash blocks are parsed, and each ``twelvefactor ...`` line runs there (its default store,
``./twelvefactor.db``, is that folder's) unless ``SKIPPED`` names a reason; a new command that is neither
run nor skipped fails here, so the README cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from twelvefactor.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
LANGUAGES = {"python", "bash", "jinja"}

# Lines of bash blocks not run here, and why. Everything else must be a `twelvefactor ...` command.
SKIPPED: dict[str, str] = {
    r"^python3 -m venv \.venv && \. \.venv/bin/activate && pip install -e \. && twelvefactor serve$": (
        "installs from the package index and starts a long-running server; what it installs is checked by"
        " test_the_first_command_installs_no_developer_tools, `serve` by tests/server/test_processes.py"
    ),
    r"^pip install -e '\.\[dev\]' && python -m pytest -q$": "it is this test suite",
    r"^pip install -e '\.\[local\]'": "builds llama-cpp-python from source (minutes)",
    r"--model local:": "loads a 98 MB model with the `local` extra: tests/models/test_local.py runs it",
    r"^twelvefactor threads show ID --calls": "shows the local model's run above, which is skipped",
    r"^python bench/": "a benchmark: minutes of runs that print figures, not assertions",
    r"--model (openai|anthropic):": "a real provider: no network here (tests/models fakes their wire formats)",
    r"^twelvefactor mcp .*--http": "a long-running MCP server: tests/mcp/test_mcp_server.py drives it with the SDK's client",
}


@dataclass(frozen=True)
class Block:
    lang: str
    info: str
    body: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.lang}-line-{self.line}"


def readme_blocks(lang: str | None = None) -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = [
        Block(m["lang"], m["info"].strip(), m["body"], text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)
    ]
    return [block for block in found if lang is None or block.lang == lang]


def commands(block: Block) -> list[str]:
    return [line.strip() for line in block.body.splitlines() if line.strip() and not line.strip().startswith("#")]


def skip_reason(command: str) -> str | None:
    return next((reason for pattern, reason in SKIPPED.items() if re.search(pattern, command)), None)


def environment(tmp_path: Path) -> dict[str, str]:
    """A `twelvefactor` command on PATH that runs this checkout (the venv's console script may not)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "twelvefactor"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "from twelvefactor.cli import main; main()" "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWELVEFACTOR_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT / "src"),
        TWELVEFACTOR_ALLOW_MODEL_REQUESTS="0",  # offline: a real provider request is an error
    )
    return env


def run_in(work: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # stdin closed: nobody answers, so a run that needs a person is left waiting (as in a script).
    return subprocess.run(
        args, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


def workdir(tmp_path: Path) -> Path:
    """A fresh folder shaped like a checkout for the README's relative paths (examples/...)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    for block in readme_blocks("jinja"):
        (work / block.info).write_text(block.body, encoding="utf-8")
    return work


def test_the_readme_has_only_blocks_this_test_knows_how_to_check() -> None:
    blocks = readme_blocks()
    assert blocks and {block.lang for block in blocks} <= LANGUAGES
    for block in readme_blocks("jinja"):
        assert re.fullmatch(r"[\w.-]+", block.info), f"{block.id}: a jinja block names the file it is"


@pytest.mark.parametrize("block", readme_blocks("python"), ids=lambda block: block.id)
def test_python_blocks_run_as_written(block: Block, tmp_path: Path) -> None:
    work = workdir(tmp_path)
    script = work / "readme_snippet.py"
    script.write_text(block.body, encoding="utf-8")
    result = run_in(work, [sys.executable, str(script)], environment(tmp_path))
    assert result.returncode == 0, result.stderr
    # `print(...)  # text` in the README claims the printed line: the comment starts with what it prints.
    claims = re.findall(r"^print\(.*\)\s+# (.+)$", block.body, re.MULTILINE)
    printed = result.stdout.splitlines()
    assert len(printed) == len(claims)
    for line, claim in zip(printed, claims, strict=True):
        assert claim.startswith(line), f"the README says {claim!r}, the snippet printed {line!r}"


@pytest.mark.parametrize("block", readme_blocks("bash"), ids=lambda block: block.id)
def test_bash_blocks_parse(block: Block) -> None:
    result = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("block", readme_blocks("bash"), ids=lambda block: block.id)
def test_bash_commands_run_as_written_or_are_skipped_for_a_reason(block: Block, tmp_path: Path) -> None:
    work = workdir(tmp_path)
    env = environment(tmp_path)
    for command in commands(block):
        if skip_reason(command) is not None:
            continue
        assert command.startswith("twelvefactor "), f"{block.id}: run {command!r} here, or add it to SKIPPED"
        if re.search(r"\bID\b", command):  # the id `run` printed: the newest thread in this folder's store
            with SQLiteStore(work / "twelvefactor.db") as store:
                command = re.sub(r"\bID\b", store.list(limit=1)[0].id, command)
        result = run_in(work, ["bash", "-c", command], env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr


def test_every_skipped_pattern_still_matches_a_readme_line() -> None:
    lines = [command for block in readme_blocks("bash") for command in commands(block)]
    for pattern in SKIPPED:
        assert any(re.search(pattern, line) for line in lines), f"SKIPPED {pattern!r} matches nothing: remove it"


# --- what each of the two commands installs -----------------------------------------------------------------

DEV_TOOLS = {"pytest", "hypothesis", "inline-snapshot", "ruff", "mypy", "schemathesis", "playwright"}


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, object] = tomllib.load(file)["project"]
    return data


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def dev_extra() -> set[str]:
    extras = project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return {requirement_name(r) for r in extras["dev"]}


def test_the_base_dependencies_hold_no_developer_tools() -> None:
    base = project()["dependencies"]
    assert isinstance(base, list)
    names = {requirement_name(r) for r in base}
    assert dev_extra() >= DEV_TOOLS
    assert not names & (DEV_TOOLS | dev_extra())


def test_the_first_command_installs_no_developer_tools_and_the_test_command_does() -> None:
    serve_block, tests_block = readme_blocks("bash")[:2]
    assert "twelvefactor serve" in serve_block.body and "pytest" in tests_block.body
    assert re.findall(r"pip install (?:-e )?(\S+)", serve_block.body) == ["."]
    assert re.findall(r"pip install (?:-e )?(\S+)", tests_block.body) == ["'.[dev]'"]


BLOCKING_IMPORTER = """
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    # As if only the base dependencies were installed: the developer tools cannot be imported.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (a developer tool)", name=name)
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, NotInstalled())
sys.argv[1:] = ["--help"]

from twelvefactor._loader import load_agent
from twelvefactor.server import ServerSettings, create_app

create_app([load_agent("examples/deploybot")], settings=ServerSettings.from_env(database="memory://"))
from twelvefactor.cli import main
main()
"""


def test_the_cli_and_the_service_work_without_the_developer_tools(tmp_path: Path) -> None:
    blocked = sorted(name.replace("-", "_") for name in dev_extra())
    result = run_in(ROOT, [sys.executable, "-c", BLOCKING_IMPORTER, ",".join(blocked)], environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Usage: twelvefactor" in result.stdout


def test_the_request_body_examples_are_what_the_api_accepts() -> None:
    from twelvefactor.server.api import _trigger_event
    from twelvefactor.server.schemas import ForkRequest, LaunchRequest, ResponseRequest, ToolResultRequest

    models: dict[str, Any] = {
        "/v1/threads": LaunchRequest.model_validate_json,
        "/v1/threads/ID/responses": ResponseRequest.model_validate_json,
        "/v1/threads/ID/events": lambda body: _trigger_event(json.loads(body)),
        "/v1/threads/ID/tool-results": ToolResultRequest.model_validate_json,
        "/v1/threads/ID/fork": ForkRequest.model_validate_json,
    }
    lines = [line.strip() for line in README.read_text().splitlines() if line.strip().startswith("POST /v1/")]
    assert len(lines) >= 8
    seen = set()
    for line in lines:
        _, path, body = line.split(maxsplit=2)
        models[path](body)  # raises if the API would refuse it
        seen.add(path)
    assert seen == set(models)
