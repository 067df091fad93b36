"""The server's TOML config file: channels and contacts as data, secrets from the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from twelvefactor.channels.config import SlackChannelConfig
from twelvefactor.errors import UserError
from twelvefactor.server import ServerSettings
from twelvefactor.server.config_file import load_config

CONFIG = """
routes = [{ contact = "release", intent = "deploy_backend" }]

[[channels]]
type = "slack"
bot_token = "${SLACK_BOT_TOKEN}"
signing_secret = "${SLACK_SIGNING_SECRET}"

[contacts]
release = [
  { channel = "slack", to = "#deploys", wait_s = 900 },
  { channel = "slack", to = "U0BOSS" },
]
"""


def test_a_config_file_sets_channels_contacts_and_routes_with_secrets_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "twelvefactor.toml"
    path.write_text(CONFIG, encoding="utf-8")
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret ${NOT_EXPANDED}"}
    settings = ServerSettings.from_env(load_config(path, env))
    (slack,) = settings.channels
    assert isinstance(slack, SlackChannelConfig)
    assert (slack.bot_token, slack.signing_secret) == ("xoxb-1", "s3cret ${NOT_EXPANDED}")  # no second pass
    assert [(s.to, s.wait_s) for s in settings.contacts["release"]] == [("#deploys", 900.0), ("U0BOSS", None)]
    assert settings.routes[0].intent == "deploy_backend"
    assert "xoxb-1" not in repr(settings)  # secrets are not printed


def test_the_environment_and_the_command_line_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "twelvefactor.toml"
    path.write_text("approval_link_ttl_s = 60.0\nmax_text_chars = 100\n", encoding="utf-8")
    monkeypatch.setenv("TWELVEFACTOR_MAX_TEXT_CHARS", "200")
    settings = ServerSettings.from_env(load_config(path), approval_link_ttl_s=30.0)
    assert (settings.approval_link_ttl_s, settings.max_text_chars) == (30.0, 200)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[channels]]\ntype = "slack"\nbot_token = "${MISSING_TOKEN}"\n',
            r"channels\[0\].bot_token is \$\{MISSING_TOKEN\}",
        ),
        ("port = 9000\n", "sets port: set those with command-line options"),
        ("contacts = [\n", "is not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused_with_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "twelvefactor.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_config(path, {})


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
