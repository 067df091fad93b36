"""/docs works offline: its scripts and styles come from this server, never from a CDN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import client_for, sqlite_app

pytestmark = pytest.mark.anyio


async def test_the_docs_page_loads_nothing_from_another_host(tmp_path: Path) -> None:
    async with client_for(sqlite_app(tmp_path)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "https://" not in page.text and "http://" not in page.text
        assert "https:" not in page.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
        assert len(assets) >= 2
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000, asset
