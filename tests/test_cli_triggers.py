"""`serve --triggers FILE` / `worker --triggers FILE`: schedules and webhook triggers from a JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twelvefactor.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"schedules": [], "extra": 1}', 'must be a JSON object with "schedules" and/or "triggers"'),
        (json.dumps({"schedules": [{"name": "w", "cron": "0 9 * *", "agent": "deploybot", "message": "m"}]}), "cron"),
        (
            json.dumps({"schedules": [{"name": "w", "cron": "0 9 * * 1", "agent": "ghost", "message": "m"}]}),
            "starts agent 'ghost', which is not served here",
        ),
    ],
)
def test_serve_refuses_a_bad_triggers_file_before_serving(tmp_path: Path, content: str, says: str) -> None:
    config = tmp_path / "triggers.json"
    config.write_text(content)
    result = runner.invoke(app, ["serve", "deploybot", "--db", str(tmp_path / "t.db"), "--triggers", str(config)])
    assert result.exit_code != 0
    assert says in " ".join(result.output.split()), result.output


def test_serve_says_when_the_triggers_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = runner.invoke(app, ["serve", "deploybot", "--db", str(tmp_path / "t.db"), "--triggers", str(missing)])
    assert result.exit_code != 0 and "cannot read --triggers" in " ".join(result.output.split())
