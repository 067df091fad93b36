"""The errors model providers raise; they are defined, with the whole tree, in ``twelvefactor.errors``."""

from __future__ import annotations

from twelvefactor.errors import CassetteError, CassetteMismatch, ModelCancelled, ProviderError, ProviderErrorKind

__all__ = ["CassetteError", "CassetteMismatch", "ModelCancelled", "ProviderError", "ProviderErrorKind"]
