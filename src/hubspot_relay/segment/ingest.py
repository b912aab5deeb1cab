"""The Segment HTTP Tracking API, as Segment's own clients call it.

`POST /v1/{identify,track,page,screen,group,alias,batch}` and analytics-next's one-letter paths;
JSON sent as `application/json` or `text/plain` (browsers avoid a preflight that way), optionally
gzip-compressed; the write key from HTTP Basic auth or the body. A 200 is sent only once the
accepted messages are committed to the durable queue.
"""

from __future__ import annotations

import base64
import binascii
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Config, Source
from ..pipeline.queue import Envelope, Queue
from .messages import BATCH_PATHS, MAX_REQUEST_BYTES, SINGLE_PATHS, InvalidMessage, accept

log = structlog.get_logger("hubspot_relay.ingest")

_ACCEPTED_TYPES = ("application/json", "text/plain")
_ENCODINGS = ("", "identity", "gzip", "x-gzip")
_ALLOWED_HEADERS = ["Content-Type", "Authorization", "Content-Encoding", "X-Retry-Count"]

INGEST_MESSAGES = Counter(
    "hubspot_relay_ingest_messages", "Messages received by ingest", ["source", "outcome"]
)
INGEST_REQUESTS = Counter("hubspot_relay_ingest_requests", "Ingest requests by status", ["status"])


class RequestError(Exception):
    """The whole request is unusable; nothing from it is stored."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    message_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "messageId": self.message_id, "reason": self.reason}


def json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(err: RequestError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="hubspot-relay"'} if err.status == 401 else None
    return json_response(err.status, {"success": False, "code": err.code, "message": err.message}, headers)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The request body, decompressed, refused as soon as it passes `limit` bytes."""
    media = _media_type(request)
    if media and media not in _ACCEPTED_TYPES:
        raise RequestError(
            415,
            "unsupported_media_type",
            f"Content-Type {media!r} is not accepted; send application/json or text/plain",
        )
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not accepted; send gzip or no encoding",
        )
    too_large = RequestError(
        400, "request_too_large", f"request body is larger than {limit} bytes (500 KB); send smaller batches"
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as e:
            raise RequestError(400, "invalid_gzip", f"body is not valid gzip: {e}") from None
        if len(body) > limit:
            raise too_large
        if not inflater.eof:
            raise RequestError(400, "invalid_gzip", "body is not valid gzip: it ends too early")
    return body


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise RequestError(400, "invalid_json", "body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(400, "invalid_json", f"body is not valid JSON: {e}") from None


def basic_auth_user(header: str) -> str | None:
    """The user part of `Authorization: Basic base64(user:password)`: Segment's write key."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def write_key_of(request: Request, payload: Any) -> str | None:
    key = basic_auth_user(request.headers.get("authorization", ""))
    if key:
        return key
    if isinstance(payload, dict):
        key = payload.get("writeKey")
        if not key and isinstance(payload.get("batch"), list):
            first = next((m for m in payload["batch"] if isinstance(m, dict) and m.get("writeKey")), None)
            key = first.get("writeKey") if first else None
    return key if isinstance(key, str) and key else None


def messages_of(payload: Any, kind: str) -> tuple[list[Any], dict[str, Any], Any, str | None]:
    """(messages, batch-level defaults, batch sentAt, forced type) for a request payload."""
    if not isinstance(payload, dict):
        raise RequestError(400, "invalid_request", "body must be a JSON object")
    if kind in BATCH_PATHS:
        batch = payload.get("batch")
        if not isinstance(batch, list):
            raise RequestError(400, "invalid_request", "a batch body needs 'batch', a list of messages")
        defaults = {k: payload[k] for k in ("context", "integrations") if isinstance(payload.get(k), dict)}
        return batch, defaults, payload.get("sentAt"), None
    return [payload], {}, None, SINGLE_PATHS[kind]


def validate_all(
    raw_messages: Sequence[Any],
    source: Source,
    received_at: datetime,
    defaults: dict[str, Any],
    sent_at: Any,
    forced_type: str | None,
) -> tuple[list[Envelope], list[Rejection]]:
    accepted: list[Envelope] = []
    rejected: list[Rejection] = []
    received_ts = received_at.timestamp()
    for index, raw in enumerate(raw_messages):
        try:
            msg = accept(raw, received_at, forced_type=forced_type, sent_at=sent_at, defaults=defaults)
        except InvalidMessage as e:
            mid = raw.get("messageId") if isinstance(raw, dict) else None
            rejected.append(Rejection(index, mid if isinstance(mid, str) else None, str(e)))
            continue
        accepted.append(Envelope(source.name, msg.message_id, msg.type, msg.body, received_ts))
    return accepted, rejected


def create_ingest_app(
    config: Config,
    queue: Queue,
    *,
    clock: Callable[[], float] = time.time,
    routes: Sequence[Route] = (),
    lifespan: Any = None,
) -> Starlette:
    """The ingest ASGI app; `routes` lets the caller mount more (settings, assets, admin)."""

    async def ingest(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in SINGLE_PATHS and kind not in BATCH_PATHS:
            return json_response(
                404, {"success": False, "code": "not_found", "message": f"unknown endpoint /v1/{kind}"}
            )
        try:
            body = await read_body(request)
            payload = parse_json(body)
            write_key = write_key_of(request, payload)
            if write_key is None:
                raise RequestError(
                    401,
                    "missing_write_key",
                    "no write key: send it as HTTP Basic user or as 'writeKey' in the body",
                )
            source = config.source_for_write_key(write_key)
            if source is None:
                raise RequestError(401, "invalid_write_key", "the write key is not valid")
            raw_messages, defaults, sent_at, forced = messages_of(payload, kind)
        except RequestError as err:
            INGEST_REQUESTS.labels(str(err.status)).inc()
            log.info(
                "request refused", path=request.url.path, status=err.status, code=err.code, reason=err.message
            )
            return error_response(err)

        received_at = datetime.fromtimestamp(clock(), UTC)
        accepted, rejected = validate_all(raw_messages, source, received_at, defaults, sent_at, forced)
        if rejected:
            INGEST_MESSAGES.labels(source.name, "rejected").inc(len(rejected))
            log.info(
                "messages rejected", source=source.name, count=len(rejected), first_reason=rejected[0].reason
            )
        if not accepted and rejected:
            INGEST_REQUESTS.labels("400").inc()
            message = (
                rejected[0].reason if len(rejected) == 1 else f"all {len(rejected)} messages are invalid"
            )
            return json_response(
                400,
                {
                    "success": False,
                    "code": "invalid_message",
                    "message": message,
                    "rejected": [r.as_dict() for r in rejected],
                },
            )
        try:
            await queue.append(accepted)
        except Exception:
            INGEST_REQUESTS.labels("503").inc()
            log.exception("queue append failed", source=source.name, count=len(accepted))
            return json_response(
                503,
                {
                    "success": False,
                    "code": "unavailable",
                    "message": "the relay could not store the messages; retry",
                },
                {"Retry-After": "1"},
            )
        INGEST_MESSAGES.labels(source.name, "accepted").inc(len(accepted))
        INGEST_REQUESTS.labels("200").inc()
        if rejected:
            return json_response(
                200, {"success": True, "accepted": len(accepted), "rejected": [r.as_dict() for r in rejected]}
            )
        return json_response(200, {"success": True})

    async def health(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    app_routes = [
        Route("/v1/{kind}", ingest, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *routes,
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=_ALLOWED_HEADERS,
            max_age=86400,
        )
    ]
    return Starlette(routes=app_routes, middleware=middleware, lifespan=lifespan)
