"""`serve --config FILE` / `worker --config FILE`: a bad file is refused with the reason before serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twelvefactor.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("schedules = [\n", "is not valid TOML"),
        ('[[schedules]]\nname = "w"\ncron = "0 9 * *"\nagent = "deploybot"\nmessage = "m"\n', "cron"),
        (
            '[[schedules]]\nname = "w"\ncron = "0 9 * * 1"\nagent = "ghost"\nmessage = "m"\n',
            "starts agent 'ghost', which is not served here",
        ),
        (
            '[contacts]\nops = [{ channel = "slack", to = "#ops" }]\n',
            "sends on channel 'slack', which is not configured",
        ),
        ('[[channels]]\ntype = "slack"\nbot_token = "${NO_SUCH_VARIABLE_X}"\n', "the environment variable is not set"),
    ],
)
def test_serve_refuses_a_bad_config_file_before_serving(tmp_path: Path, content: str, says: str) -> None:
    config = tmp_path / "twelvefactor.toml"
    config.write_text(content)
    result = runner.invoke(app, ["serve", "deploybot", "--db", str(tmp_path / "t.db"), "--config", str(config)])
    assert result.exit_code != 0
    assert says in " ".join(result.output.split()), result.output


def test_serve_says_when_the_config_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = runner.invoke(app, ["serve", "deploybot", "--db", str(tmp_path / "t.db"), "--config", str(missing)])
    assert result.exit_code != 0 and "does not exist" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("model_limits = { openai = 0 }\n", "model concurrency limit 'openai' must be at least 1"),
        ('model_limits = "fifty"\n', "invalid configuration"),
    ],
)
def test_worker_reads_the_per_model_limits_of_the_config_file(tmp_path: Path, content: str, says: str) -> None:
    pytest.importorskip("procrastinate", reason="workers need procrastinate")
    config = tmp_path / "twelvefactor.toml"
    config.write_text(content)
    # Refused before any connection: the database URL points nowhere.
    result = runner.invoke(
        app, ["worker", "deploybot", "--db", "postgresql://127.0.0.1:9/none", "--config", str(config)]
    )
    assert result.exit_code != 0
    assert says in " ".join(result.output.split()), result.output
