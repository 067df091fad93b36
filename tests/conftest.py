from __future__ import annotations

from collections.abc import Iterator

import pytest

from twelvefactor.models import forbid_real_requests


@pytest.fixture(autouse=True)
def _no_real_model_requests() -> Iterator[None]:
    # The whole suite runs offline: any real provider request is an error, not a network call.
    with forbid_real_requests():
        yield
