"""ASGI middleware of the service: the token checked before a request body is read, the
request size limit, enforced while the body streams in, and the security headers on every
answer.

A ``Content-Length`` over the limit is refused before reading; a body without one (chunked)
is counted and cut off at the limit, so a client cannot fill memory or disk with one request.
Both are plain ASGI (no ``BaseHTTPMiddleware``, which re-streams every body through its own
queue: 6 % of the server's CPU under upload load).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

#: Largest request body: a 16-bit dual pair of 4000 x 8000 pixels is ~128 MB uncompressed,
#: and PNG/TIFF compress scans well; raise it with ``serve --max-upload-mb``.
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class security_headers:  # noqa: N801 (an ASGI middleware class, named like Starlette's)
    """ASGI middleware: `SECURITY_HEADERS` on every HTTP answer, and ``Cache-Control:
    no-store`` on ``/api/`` answers (scans and decisions never sit in a browser cache)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api/")

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if api:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(Exception):
    """The request body exceeds the limit (HTTP 413)."""


#: Largest body of any request but an upload (a decision: at most 100 boxes and a 2,000
#: character note, a few KB): JSON is parsed whole in memory, so it gets no upload's room.
MAX_OTHER_BODY_BYTES = 1024 * 1024
#: The one route that takes scan files.
UPLOAD_PATH = "/api/scans"


class limit_body:  # noqa: N801 (an ASGI middleware class, named like Starlette's)
    """ASGI middleware: refuse request bodies larger than ``max_bytes`` (uploads) or
    `MAX_OTHER_BODY_BYTES` (every other route) with 413."""

    def __init__(self, app, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes: expected >= 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = (self.max_bytes if scope.get("path") == UPLOAD_PATH
                     else min(self.max_bytes, MAX_OTHER_BODY_BYTES))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await _refuse(send, max_bytes)
                return
        seen = 0
        exceeded = False

        async def counted():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    exceeded = True
                    raise BodyTooLarge(f"request body larger than {max_bytes} bytes")
            return message

        async def unless_exceeded(message) -> None:
            # A body parser (multipart) may turn BodyTooLarge into its own 400 "error parsing
            # the body": once the limit is hit, the app's answer is dropped and ours is 413.
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counted, unless_exceeded)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _refuse(send, max_bytes)


class auth_before_body:  # noqa: N801 (an ASGI middleware class, named like Starlette's)
    """ASGI middleware: an ``/api/`` request that carries a body (an upload, a decision) is
    answered 401 from its headers alone when ``check(authorization_header)`` refuses it, before
    one byte of the body is read: otherwise anyone who can reach the port could make the
    station read and spool up to the upload limit per connection. The routes still check the
    token themselves; this only moves the refusal in front of the body."""

    def __init__(self, app, check) -> None:
        self.app, self.check = app, check

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] == "http" and scope.get("method") in ("POST", "PUT", "PATCH")
                and scope.get("path", "").startswith("/api/")):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                           if k == b"authorization"), None)
            if not self.check(header):
                body = b'{"detail": "a valid \'Authorization: Bearer TOKEN\' is required"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer"),
                                        (b"connection", b"close"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def _refuse(send, max_bytes: int) -> None:
    body = f'{{"detail": "request body larger than {max_bytes} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
