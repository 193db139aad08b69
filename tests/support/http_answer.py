"""The one way the tests' stand-in HTTP servers (Kubernetes API, a hub) answer."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def answer(handler: BaseHTTPRequestHandler, status: int, body: Any,
           content_type: str | None = None) -> None:  # fmt: skip
    """Send `body` (text as is, anything else as JSON) with its length."""
    is_text = isinstance(body, str)
    data = body.encode() if is_text else json.dumps(body).encode()
    handler.send_response(status)
    kind = content_type or ("text/plain" if is_text else "application/json")
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
