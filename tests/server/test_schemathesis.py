"""Property-based API testing from the published OpenAPI document, every phase and every check.

Runs schemathesis's engine (its Python API; the pytest plugin does not run on the pytest version here)
against a real uvicorn: examples, coverage, fuzzing and stateful phases, with all of its checks (no
5xx, status codes and bodies as documented, invalid input rejected, valid input accepted, auth as
declared...). Bounded by a time budget that the fuzzing and stateful phases share, and a seed, so that
it stays well under a minute on two cores and is reproducible.
"""

from __future__ import annotations

import time
from pathlib import Path

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.engine.recorder import CheckNode, ScenarioRecorder

from twelvefactor.server.testing import live_server

from .conftest import calculator, deploybot, sqlite_app

BUDGET_S = 35
PHASES = ("examples", "coverage", "fuzzing", "stateful")


def test_every_phase_and_check_passes_against_the_document(tmp_path: Path) -> None:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "max-time": BUDGET_S,
            "generation": {"max-examples": 8},
            "phases": {"stateful": {"max-steps": 10}},
            "checks": {"max-response-time": {"enabled": False}},  # a shared 2-core machine: never assert speed
            "operations": [
                {
                    # Whether an answer fits depends on which request is pending (an approval answered with
                    # text only is 422 by contract): state the schema cannot express.
                    "include-path-regex": "/responses$",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 422]}},
                }
            ],
        }
    )
    app = sqlite_app(tmp_path, deploybot(), calculator())
    started = time.monotonic()
    with live_server(app) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)
        # The stream never ends by design; it is tested on its own in test_api.py and test_hostile_input.py.
        schema = schema.exclude(path_regex=r"/stream$")
        failures: list[str] = []
        finished: dict[str, set[str]] = {}
        scenarios: dict[str, int] = {}
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.PhaseFinished):  # the elastic phases may run (and finish) several times
                finished.setdefault(event.phase.name.value, set()).add(event.status.value)
            elif isinstance(event, events.ScenarioFinished):
                scenarios[event.phase.value] = scenarios.get(event.phase.value, 0) + 1
                for case_id, checks in event.recorder.checks.items():
                    failures += [
                        _describe(event.recorder, case_id, check) for check in checks if check.status == Status.FAILURE
                    ]
            elif isinstance(event, events.NonFatalError | events.FatalError):
                failures.append(f"{type(event).__name__}: {event.info if hasattr(event, 'info') else event}")
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    for phase in PHASES:
        assert scenarios.get(phase, 0) > 0 and "success" in finished.get(phase, set()), (phase, finished, scenarios)
        assert not finished[phase] & {"failure", "error", "interrupted"}, (phase, finished)
    assert elapsed < 60, f"schemathesis took {elapsed:.0f}s"


def _describe(recorder: ScenarioRecorder, case_id: str, check: CheckNode) -> str:
    """A failure with what to reproduce it by: the check, the request and the response."""
    interaction = recorder.interactions.get(case_id)
    exchange = ""
    if interaction is not None:
        request = f"{interaction.request.method} {interaction.request.uri} {interaction.request.body!r}"[:400]
        response = interaction.response
        answer = "no response" if response is None else f"{response.status_code} {response.content[:300]!r}"
        exchange = f"\n    {request}\n    -> {answer}"
    failure = check.failure_info.failure if check.failure_info else ""
    return f"{recorder.label}: {check.name}: {failure}{exchange}"
