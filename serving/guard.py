"""What every /v1 request passes before any route sees it: the API key (401), then the body-size limit (413,
enforced while the body arrives, before anything parses it). Pure ASGI middleware, so a refused request costs
neither a JSON parse nor a pydantic validation.

The key comes from QWENFLOW_API_KEY or the file named by QWENFLOW_API_KEY_FILE (a mounted Kubernetes Secret);
clients send `Authorization: Bearer KEY` as the openai client does. With neither set the API is open (local use):
the service logs a warning at start-up.
"""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

from qwenflow.serving import metrics
from qwenflow.serving.protocol import error_body

API_KEY_ENV, API_KEY_FILE_ENV = "QWENFLOW_API_KEY", "QWENFLOW_API_KEY_FILE"


def api_key() -> str | None:
    """The configured key, or None when the API is open; a named key file that cannot be read is an error."""
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV].strip()
    path = os.environ.get(API_KEY_FILE_ENV)
    if path:
        try:
            key = Path(path).read_text().strip()
        except OSError as e:
            raise ValueError(f"{API_KEY_FILE_ENV}={path}: cannot read the API key file ({e.strerror})") from None
        if not key:
            raise ValueError(f"{API_KEY_FILE_ENV}={path}: the API key file is empty")
        return key
    return None


async def _send_error(send, status: int, message: str, code: str, path: str) -> None:
    metrics.REQUESTS.labels(endpoint=metrics.route(path), status=str(status)).inc()
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    def __init__(self, app, key: str | None):
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.key is None:
            return await self.app(scope, receive, send)
        auth = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
            return await _send_error(
                send,
                401,
                "missing or incorrect API key: send the header 'Authorization: Bearer <key>'",
                "invalid_api_key",
                scope.get("path", ""),
            )
        return await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Reads the body (up to `limit` bytes) before the app runs, then replays it: a larger body is a 413 as soon as
    its declared length or its received bytes pass the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        too_big = (
            f"request body is larger than this server's limit of {self.limit} bytes "
            "(QWENFLOW_MAX_BODY_BYTES); send a shorter prompt"
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _send_error(send, 413, too_big, "request_too_large", path)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _send_error(send, 413, too_big, "request_too_large", path)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client's disconnect, as Starlette expects

        return await self.app(scope, replay, send)
