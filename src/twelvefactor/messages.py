"""Chat messages: what a prompt renders to and a model is sent (core: the models import it, not the reverse)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message exactly as sent to the model."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    role: Role
    content: str
