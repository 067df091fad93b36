"""Humans on the channels they already use (factor 7): email, Slack, webhooks; escalation chains.

``base`` holds what every channel shares (the ``Notice`` a channel sends, the ``Receipt`` it returns, the
``Channel`` protocol); ``config`` the settings that say which channel and person get which request.
"""

from twelvefactor.channels.base import Answered, Channel, ChannelError, Notice, NoticeKind, Receipt
from twelvefactor.channels.config import (
    ChannelConfig,
    ContactStep,
    EmailChannelConfig,
    Route,
    SlackChannelConfig,
)

__all__ = [
    "Answered",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ContactStep",
    "EmailChannelConfig",
    "Notice",
    "NoticeKind",
    "Receipt",
    "Route",
    "SlackChannelConfig",
]
