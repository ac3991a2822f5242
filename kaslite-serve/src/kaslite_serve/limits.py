"""A cap on request body size: 413 before a large body is read, whether it declares its length or not."""

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """ASGI middleware answering 413 to any body over ``max_bytes``.

    The request still goes through routing, so the answer is the route's
    (``{"error": ...}`` on ``/v2``) and whoever counts requests sees which
    route refused it; only reading the body fails. A body that declares its
    length fails on the first read, before any of it is read; one sent in
    chunks fails as soon as it grows too large. FastAPI turns an
    HTTPException raised while it reads a body into that response.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"request body is over the {max_bytes}-byte limit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def counted() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise HTTPException(status_code=413, detail=self.message)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(status_code=413, detail=self.message)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
