"""Comparing an eval run with a saved one (the baseline): what regressed, what improved.

A case regresses when it passed in the baseline and fails now, or when its score dropped by more than
``tolerance``. A case that failed in both is a known failure, not a regression, so CI can hold the line
while the team works on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from twelvefactor.errors import DatasetError
from twelvefactor.evals.runner import EvalResult

Change = Literal["regressed", "improved", "same", "new", "missing"]


class CaseChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    change: Change
    passed: bool | None  # now (None: the case is not in this run)
    was_passed: bool | None  # in the baseline (None: the case is new)
    score: float | None
    was_score: float | None

    @property
    def score_delta(self) -> float | None:
        if self.score is None or self.was_score is None:
            return None
        return round(self.score - self.was_score, 4)


class Comparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    changes: list[CaseChange]

    @property
    def regressions(self) -> list[CaseChange]:
        return [change for change in self.changes if change.change == "regressed"]

    def of(self, case_id: str) -> CaseChange | None:
        return next((change for change in self.changes if change.id == case_id), None)


def compare(current: EvalResult, baseline: EvalResult, *, tolerance: float = 0.0) -> Comparison:
    """Each case of either run, and how it changed since the baseline."""
    before = {case.id: case for case in baseline.cases}
    changes: list[CaseChange] = []
    for case in current.cases:
        old = before.pop(case.id, None)
        if old is None:
            change: Change = "new"
        elif (old.passed and not case.passed) or case.score < old.score - tolerance:
            change = "regressed"
        elif (case.passed and not old.passed) or case.score > old.score + tolerance:
            change = "improved"
        else:
            change = "same"
        changes.append(
            CaseChange(
                id=case.id,
                change=change,
                passed=case.passed,
                was_passed=None if old is None else old.passed,
                score=case.score,
                was_score=None if old is None else old.score,
            )
        )
    for old in before.values():
        changes.append(
            CaseChange(id=old.id, change="missing", passed=None, was_passed=old.passed, score=None, was_score=old.score)
        )
    return Comparison(changes=changes)


def load_result(path: str | Path) -> EvalResult:
    """A saved eval result (``twelvefactor eval --out FILE``), or DatasetError saying what is wrong with it."""
    path = Path(path)
    try:
        return EvalResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise DatasetError(f"cannot read eval result {str(path)!r}: {exc.strerror}") from exc
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problem = f"{where}: {first['msg']}"
        else:
            problem = str(exc)
        raise DatasetError(
            f"{str(path)!r} is not an eval result (twelvefactor eval ... --out FILE writes one): {problem}"
        ) from exc
