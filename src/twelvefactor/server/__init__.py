"""The twelvefactor service: ``create_app(agents)`` for ASGI, ``twelvefactor serve`` on the command line."""

from twelvefactor.server.app import create_app
from twelvefactor.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
