"""HTTP helpers every door shares."""

from __future__ import annotations

from aiohttp import web

from server.errors import TooLarge


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is larger than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the request is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
