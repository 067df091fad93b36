"""A safe default server: Host validation (DNS rebinding) and security headers (click-jacking, sniffing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twelvefactor.server import ServerSettings

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio

PROD = {"agent": "deploybot", "message": "deploy the latest backend to production"}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"])
async def test_a_dns_rebound_host_is_refused_before_anything_runs(tmp_path: Path, host: str) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        launched = await client.post("/v1/threads", json=PROD, headers={"Host": host})
        assert launched.status_code == 400, launched.text
        assert "Host" in launched.json()["detail"] and "TWELVEFACTOR_ALLOWED_HOSTS" in launched.json()["detail"]
        page = await client.get("/threads", headers={"Host": host})
        assert page.status_code == 400
        assert (await client.get("/v1/threads")).json() == []  # nothing was launched


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]", "[::1]:8000"])
async def test_loopback_names_with_any_port_are_accepted(tmp_path: Path, host: str) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        assert (await client.get("/v1/agents", headers={"Host": host})).status_code == 200


async def test_the_public_url_host_and_configured_hosts_are_accepted(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path, public_url="https://agents.example.com", allowed_hosts=["ops.example.net"])
    async with client_for(app) as client:
        for host in ("agents.example.com", "agents.example.com:443", "ops.example.net:8000"):
            assert (await client.get("/v1/agents", headers={"Host": host})).status_code == 200, host
        assert (await client.get("/v1/agents", headers={"Host": "other.example.com"})).status_code == 400


def test_allowed_hosts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWELVEFACTOR_ALLOWED_HOSTS", "a.example, b.example:8080")
    assert ServerSettings.from_env().allowed_hosts == ["a.example", "b.example:8080"]


PAGES = ["/threads", "/v1/agents", "/static/ui.css", "/docs", "/openapi.json", "/no-such-page", "/a/not-a-token"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_response_forbids_framing_and_sniffing(tmp_path: Path, path: str) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.get(path)
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, (path, csp)
        assert "default-src" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in ("no-referrer", "same-origin", "strict-origin-when-cross-origin")


async def test_ui_pages_allow_no_inline_script(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        csp = (await client.get("/threads")).headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
        assert "'unsafe-inline'" not in directives["script-src"]
        assert "'unsafe-inline'" not in directives.get("style-src", "")


async def test_the_docs_page_runs_its_script_by_nonce(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        response = await client.get("/docs")
        nonce = response.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<script nonce="{nonce}">' in response.text
        assert (
            "'unsafe-inline'" not in response.headers["content-security-policy"].split("script-src", 1)[1].split(";")[0]
        )


async def test_health_probes_by_pod_ip_are_answered_whatever_the_host(tmp_path: Path) -> None:
    # Orchestrators probe with the pod's IP as Host; /healthz changes nothing and reveals nothing.
    async with client_for(sqlite_app(tmp_path)) as client:
        assert (await client.get("/healthz", headers={"Host": "10.1.2.3:8000"})).status_code == 200
        assert (await client.get("/healthz/../v1/agents", headers={"Host": "10.1.2.3:8000"})).status_code == 400
