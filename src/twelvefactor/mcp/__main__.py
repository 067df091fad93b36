"""``python -m twelvefactor.mcp AGENT... [--db PATH] [--http PORT]``: serve agents over MCP."""

from twelvefactor.mcp.server import main

raise SystemExit(main())
