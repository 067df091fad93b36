"""Property-based API testing from the published OpenAPI document: no input gives a 5xx.

Drives schemathesis's strategies with hypothesis directly (its pytest plugin does not run on the
pytest version here), one generated test per API operation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from twelvefactor.server.testing import live_server

from .conftest import sqlite_app


def test_no_generated_input_gets_a_server_error(tmp_path: Path) -> None:
    app = sqlite_app(tmp_path)
    with live_server(app) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        # The stream never ends by design; it is tested on its own in test_api.py.
        operations = [result.ok() for result in schema.exclude(path_regex=r"/stream$").get_all_operations()]
        assert len(operations) >= 7, [op.label for op in operations]
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=base, checks=[not_a_server_error])

            try:
                check()
            except Exception as exc:
                pytest.fail(f"{operation.label}: {exc}")
