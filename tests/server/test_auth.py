"""Bearer API tokens, refusing to serve beyond loopback without them, and signed single-use approval links."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from twelvefactor import Agent, ScriptedModel
from twelvefactor.cli import app as cli
from twelvefactor.errors import LinkError, UserError
from twelvefactor.server import ServerSettings, create_app
from twelvefactor.server.auth import generate_secret, token_matches
from twelvefactor.server.links import approval_link, make_token, read_token

from .conftest import client_for, deploybot, wait_for_status

TOKEN = "tok_" + "a" * 40
OTHER = "tok_" + "b" * 40


def app_with(tmp_path: Path, *agents: Agent, **settings: Any) -> FastAPI:
    config = ServerSettings(database=str(tmp_path / "service.db"), **settings)
    return create_app(list(agents) or [deploybot()], settings=config)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- bearer tokens ---


def test_token_matches_only_configured_tokens() -> None:
    assert token_matches(TOKEN, [OTHER, TOKEN])
    assert not token_matches(TOKEN[:-1], [TOKEN])
    assert not token_matches(TOKEN + "x", [TOKEN])
    assert not token_matches("", [TOKEN])
    assert not token_matches(TOKEN, [])


@pytest.mark.anyio
async def test_without_tokens_a_loopback_server_is_open(tmp_path: Path) -> None:
    async with client_for(app_with(tmp_path)) as client:
        assert (await client.get("/v1/agents")).status_code == 200


@pytest.mark.anyio
async def test_with_tokens_the_api_needs_one(tmp_path: Path) -> None:
    async with client_for(app_with(tmp_path, api_tokens=[TOKEN, OTHER])) as client:
        missing = await client.get("/v1/agents")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="twelvefactor"'
        assert "Authorization: Bearer" in missing.json()["detail"]

        wrong = await client.get("/v1/agents", headers=bearer("tok_guess"))
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]

        other_scheme = await client.get("/v1/agents", headers={"Authorization": f"Basic {TOKEN}"})
        assert other_scheme.status_code == 401

        assert (await client.get("/v1/agents", headers=bearer(TOKEN))).status_code == 200
        assert (await client.get("/v1/agents", headers=bearer(OTHER))).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

        # Nothing is launched without a token; with one, it is.
        refused = await client.post("/v1/threads", json={"agent": "deploybot", "message": "deploy to staging"})
        assert refused.status_code == 401
        assert (await client.get("/v1/threads", headers=bearer(TOKEN))).json() == []
        launched = await client.post(
            "/v1/threads", json={"agent": "deploybot", "message": "deploy to staging"}, headers=bearer(TOKEN)
        )
        assert launched.status_code == 202


@pytest.mark.anyio
async def test_every_v1_route_but_the_signed_webhooks_needs_a_token(tmp_path: Path) -> None:
    app = app_with(tmp_path, api_tokens=[TOKEN])
    async with client_for(app) as client:
        paths = (await client.get("/openapi.json", headers=bearer(TOKEN))).json()["paths"]
        operations = [(method, path) for path, item in paths.items() if path.startswith("/v1/") for method in item]
        assert len(operations) >= 9
        for method, path in operations:
            response = await client.request(method, path.replace("{thread_id}", "t1"), json={})
            # 404: no inbound secret, no trigger of that name configured (signed, not token-authenticated)
            expected = 404 if path in ("/v1/webhooks/resume", "/v1/triggers/{name}", "/v1/email/inbound") else 401
            assert response.status_code == expected, (method, path, response.text)


@pytest.mark.anyio
async def test_the_openapi_document_declares_bearer_auth(tmp_path: Path) -> None:
    async with client_for(app_with(tmp_path, api_tokens=[TOKEN])) as client:
        spec = (await client.get("/openapi.json", headers=bearer(TOKEN))).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert spec["paths"]["/v1/agents"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/webhooks/resume"]["post"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_beyond_loopback_the_server_refuses_to_start_without_tokens(tmp_path: Path, host: str) -> None:
    settings = ServerSettings(host=host, database=str(tmp_path / "s.db"))
    with pytest.raises(UserError, match="refusing to serve on .* without authentication"):
        settings.check()
    with pytest.raises(UserError, match="refusing"):
        create_app([deploybot()], settings=settings)
    ServerSettings(host=host, api_tokens=[TOKEN]).check()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_tokens(host: str) -> None:
    ServerSettings(host=host).check()


def test_weak_settings_are_refused() -> None:
    with pytest.raises(UserError, match="empty API token"):
        ServerSettings(api_tokens=[" "]).check()
    with pytest.raises(UserError, match="at least 16"):
        ServerSettings(secret="short").check()


def test_serve_beyond_loopback_without_tokens_exits_with_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TWELVEFACTOR_API_TOKENS", raising=False)
    result = CliRunner().invoke(
        cli, ["serve", "examples/deploybot", "--host", "0.0.0.0", "--db", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 1
    assert "refusing to serve on '0.0.0.0' without authentication" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--webhook-url", "http://127.0.0.1:9/h"], "needs a signing secret"),
        (["--webhook-secret", "whsec_x"], "without --webhook-url"),
        (["--webhook-url", "http://127.0.0.1:9/h", "--webhook-secret", "nope!"], "not whsec_<base64>"),
        (["--inbound-webhook-secret", "whsec_c2hvcnQ="], "at least 16"),
        (["--webhook-url", "ftp://x/", "--webhook-secret", generate_secret()], "absolute http"),
    ],
)
def test_serve_rejects_bad_webhook_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], message: str
) -> None:
    for name in ("TWELVEFACTOR_WEBHOOK_URL", "TWELVEFACTOR_WEBHOOK_SECRET", "TWELVEFACTOR_INBOUND_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["serve", "examples/deploybot", "--db", str(tmp_path / "s.db"), *args])
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())


def test_webhook_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret, inbound = generate_secret(), generate_secret()
    monkeypatch.setenv("TWELVEFACTOR_WEBHOOK_URL", "https://hooks.example.test/in")
    monkeypatch.setenv("TWELVEFACTOR_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("TWELVEFACTOR_INBOUND_WEBHOOK_SECRET", inbound)
    settings = ServerSettings.from_env()
    assert [(w.url, w.secret) for w in settings.webhooks] == [("https://hooks.example.test/in", secret)]
    assert settings.inbound_webhook_secret == inbound
    assert secret not in repr(settings) and inbound not in repr(settings)


# --- signed approval links ---


def flip(text: str) -> str:
    """``text`` with its last character changed (to another base64url character)."""
    return text[:-1] + ("B" if text[-1] == "A" else "A")


def test_tokens_round_trip_and_reject_tampering_and_expiry() -> None:
    secret = "s" * 32
    token = make_token(secret, "t1", "call_3", ttl_s=60)
    claims = read_token(secret, token)
    assert (claims.thread_id, claims.request_id) == ("t1", "call_3")
    assert claims.expires_at > time.time() and len(claims.nonce) >= 16
    assert make_token(secret, "t1", "call_3", ttl_s=60) != token  # a fresh nonce per link

    payload, signature = token.split(".")
    with pytest.raises(LinkError, match="does not match"):
        read_token("x" * 32, token)
    with pytest.raises(LinkError, match="does not match"):
        read_token(secret, f"{flip(payload)}.{signature}")
    with pytest.raises(LinkError, match="does not match"):
        read_token(secret, f"{payload}.{flip(signature)}")
    with pytest.raises(LinkError, match="not an approval link"):
        read_token(secret, "garbage")
    with pytest.raises(LinkError, match="expired"):
        read_token(secret, token, now=claims.expires_at)
    with pytest.raises(UserError, match="ttl_s"):
        make_token(secret, "t1", "call_3", ttl_s=0)


def link_path(url: str) -> str:
    return urlsplit(url).path


async def waiting_deploy(client: httpx.AsyncClient) -> dict[str, Any]:
    launched = await client.post("/v1/threads", json={"agent": "deploybot", "message": "deploy v1.4.2 to production"})
    return await wait_for_status(client, launched.json()["id"], "waiting")


@pytest.mark.anyio
async def test_a_link_shows_a_confirmation_page_and_get_changes_nothing(tmp_path: Path) -> None:
    app = app_with(tmp_path, public_url="https://agents.example.test/")
    async with client_for(app) as client:
        thread = await waiting_deploy(client)
        url = approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"])
        assert url.startswith("https://agents.example.test/a/")
        for _ in range(3):  # link previewers, then the person
            page = await client.get(link_path(url))
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["referrer-policy"] == "no-referrer"
        html = page.text
        assert "Approve deploy_backend {&quot;environment&quot;: &quot;production&quot;" in html
        assert '<button type="submit" name="decision" value="approve">Approve</button>' in html
        assert '<button type="submit" name="decision" value="deny">Deny</button>' in html
        assert '<label for="reason">' in html and 'method="post"' in html
        after = (await client.get(f"/v1/threads/{thread['id']}")).json()
        assert after["version"] == thread["version"] and after["status"] == "waiting"


@pytest.mark.anyio
async def test_a_link_approves_once_and_a_second_use_is_refused(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with client_for(app) as client:
        thread = await waiting_deploy(client)
        path = link_path(approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"]))
        used = await client.post(path, data={"decision": "approve"})
        assert used.status_code == 200 and "Approved" in used.text
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deployed v1.4.2 to production."
        response = next(e for e in done["events"] if e["type"] == "human_response")
        assert response["approved"] is True and response["responder"] == "approval link"
        assert response["idempotency_key"].startswith("link:")

        again = await client.post(path, data={"decision": "deny", "reason": "changed my mind"})
        assert again.status_code == 409 and "already used" in again.text
        assert (await client.get(path)).status_code == 409
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == done["version"]


@pytest.mark.anyio
async def test_a_link_denies_with_a_reason(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with client_for(app) as client:
        thread = await waiting_deploy(client)
        path = link_path(approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"]))
        assert (await client.post(path, data={"decision": "deny", "reason": "change freeze"})).status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        assert done["events"][-1]["message"] == "Deploy cancelled by a human (change freeze)."


@pytest.mark.anyio
@pytest.mark.parametrize("defect", ["expired", "tampered", "other secret", "truncated"])
async def test_expired_and_forged_links_get_403_and_change_nothing(tmp_path: Path, defect: str) -> None:
    app = app_with(tmp_path)
    async with client_for(app) as client:
        thread = await waiting_deploy(client)
        settings = app.state.runtime.settings
        request_id = thread["pending_request"]["call_id"]
        if defect == "expired":
            url = approval_link(settings, thread["id"], request_id, ttl_s=60, now=time.time() - 61)
        elif defect == "other secret":
            url = approval_link(settings.model_copy(update={"secret": "z" * 32}), thread["id"], request_id)
        else:
            url = approval_link(settings, thread["id"], request_id)
            url = flip(url) if defect == "tampered" else url[:-20]
        page = await client.get(link_path(url))
        assert page.status_code == 403
        posted = await client.post(link_path(url), data={"decision": "approve"})
        assert posted.status_code == 403
        after = (await client.get(f"/v1/threads/{thread['id']}")).json()
        assert after["status"] == "waiting" and after["version"] == thread["version"]


@pytest.mark.anyio
async def test_a_link_to_a_request_answered_elsewhere_changes_nothing(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with client_for(app) as client:
        thread = await waiting_deploy(client)
        request_id = thread["pending_request"]["call_id"]
        path = link_path(approval_link(app.state.runtime.settings, thread["id"], request_id))
        answered = await client.post(
            f"/v1/threads/{thread['id']}/responses", json={"request_id": request_id, "approved": True}
        )
        assert answered.status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        page = await client.get(path)
        assert page.status_code == 409 and "already answered" in page.text
        assert (await client.post(path, data={"decision": "deny"})).status_code == 409
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == done["version"]


@pytest.mark.anyio
async def test_a_link_asks_a_question_with_its_text_escaped(tmp_path: Path) -> None:
    question = "<script>alert('x')</script> Which environment & why?"
    asker = Agent(
        "asker",
        model=ScriptedModel(
            [{"intent": "request_human_input", "question": question}, {"intent": "done_for_now", "message": "ok"}]
        ),
    )
    app = app_with(tmp_path, asker)
    async with client_for(app) as client:
        launched = await client.post("/v1/threads", json={"agent": "asker", "message": "go"})
        thread = await wait_for_status(client, launched.json()["id"], "waiting")
        path = link_path(approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"]))
        page = (await client.get(path)).text
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Which environment &amp; why?" in page
        assert '<label for="answer">Your answer</label>' in page

        empty = await client.post(path, data={"decision": "answer", "answer": "  "})
        assert empty.status_code == 422
        assert (await client.get(f"/v1/threads/{thread['id']}")).json()["version"] == thread["version"]

        assert (
            await client.post(path, data={"decision": "answer", "answer": "staging, it's Friday"})
        ).status_code == 200
        done = await wait_for_status(client, thread["id"], "done")
        answer = next(e for e in done["events"] if e["type"] == "human_response")
        assert answer["text"] == "staging, it's Friday"


@pytest.mark.anyio
async def test_links_need_no_account_when_the_api_has_tokens(tmp_path: Path) -> None:
    app = app_with(tmp_path, api_tokens=[TOKEN])
    async with client_for(app, headers=bearer(TOKEN)) as client:
        thread = await waiting_deploy(client)
        path = link_path(approval_link(app.state.runtime.settings, thread["id"], thread["pending_request"]["call_id"]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as anonymous:
            assert (await anonymous.get(f"/v1/threads/{thread['id']}")).status_code == 401
            assert (await anonymous.get(path)).status_code == 200
            assert (await anonymous.post(path, data={"decision": "approve"})).status_code == 200
        await wait_for_status(client, thread["id"], "done")
