"""The Segment HTTP Tracking API, as Segment's own clients call it.

`POST /v1/{identify,track,page,screen,group,alias,batch}` and analytics-next's one-letter paths;
JSON sent as `application/json` or `text/plain` (browsers avoid a preflight that way), optionally
gzip-compressed; the write key from HTTP Basic auth or the body. A 200 is sent only once the
accepted messages are committed to the durable queue.

The POST path is plain ASGI rather than a Starlette route: it is the relay's hot path, and
skipping the framework's request, routing and middleware objects roughly halves its cost.
Everything else (CORS preflight, health, metrics, settings, assets) goes through Starlette.
"""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import structlog
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..activity import ACTIVITY
from ..config import Config, Source
from ..health import StoreHealth
from ..queue.protocol import Envelope, Queue
from ..translate.subjects import Forgotten, subjects_of
from .backpressure import Backpressure
from .messages import (
    BATCH,
    BATCH_PATHS,
    FIELDS,
    MAX_DEPTH,
    MAX_REQUEST_BYTES,
    SINGLE_PATHS,
    InvalidMessage,
    accept,
    is_object,
    parse_time,
)

log = structlog.get_logger("hubspot_relay.ingest")

_ACCEPTED_TYPES = ("application/json", "text/plain")
_ENCODINGS = ("", "identity", "gzip", "x-gzip")
_ALLOWED_HEADERS = ["Content-Type", "Authorization", "Content-Encoding", "X-Retry-Count"]
# A client gets this long to send its whole body: a slow sender cannot hold a request open for ever.
BODY_TIMEOUT_S = 30.0
# No valid batch under 500 KB holds more messages than this (the shortest valid message,
# {"type":"page","anonymousId":1}, takes 32 bytes with its comma): more is garbage, refused whole
# before validating each item ties up the event loop.
MAX_BATCH_MESSAGES = MAX_REQUEST_BYTES // 32 + 1
# A refusal lists this many rejected messages and counts the rest: a 480 KB batch of invalid
# items must not become an 18 MB answer.
MAX_REJECTIONS_LISTED = 20

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


class Headers:
    """The few request headers ingest reads, picked out of the ASGI scope in one pass."""

    __slots__ = ("authorization", "content_encoding", "content_length", "content_type", "origin")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self.content_type = self.content_encoding = self.content_length = ""
        self.authorization = self.origin = ""
        for name, value in raw:
            n = name.lower()
            if n == b"content-type":
                self.content_type = value.decode("latin-1")
            elif n == b"authorization":
                self.authorization = value.decode("latin-1")
            elif n == b"content-length":
                self.content_length = value.decode("latin-1")
            elif n == b"content-encoding":
                self.content_encoding = value.decode("latin-1")
            elif n == b"origin":
                self.origin = value.decode("latin-1")


def _too_large(limit: int) -> RequestError:
    return RequestError(
        400, "request_too_large", f"request body is larger than {limit} bytes (500 KB); send smaller batches"
    )


def _check_headers(headers: Headers, limit: int) -> str:
    """Refuse what the headers already rule out; returns the content encoding."""
    media = headers.content_type.split(";", 1)[0].strip().lower()
    if media and media not in _ACCEPTED_TYPES:
        raise RequestError(
            415,
            "unsupported_media_type",
            f"Content-Type {media!r} is not accepted; send application/json or text/plain",
        )
    encoding = headers.content_encoding.strip().lower()
    if encoding not in _ENCODINGS:
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not accepted; send gzip or no encoding",
        )
    declared = headers.content_length
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    return encoding


async def read_body(
    headers: Headers, receive: Receive, limit: int = MAX_REQUEST_BYTES, body_timeout: float = BODY_TIMEOUT_S
) -> bytes:
    """The request body, decompressed, refused as soon as it passes `limit` bytes or takes longer
    than `body_timeout` seconds to arrive.

    The body nearly always arrives with the headers, and the server hands it over at once: only
    a body still arriving after that is put under a timer (a timer for every request cost about
    a tenth of a small request's time). A client that sends its headers and never a byte of body
    is cut off by the connection's own deadline (`connections.py`).
    """
    encoding = _check_headers(headers, limit)
    first = await receive()
    if first["type"] == "http.request" and not first.get("more_body", False):
        body = first.get("body", b"")
        if len(body) > limit:
            raise _too_large(limit)
    else:
        try:
            async with asyncio.timeout(body_timeout):
                body = await _rest_of_body(first, receive, limit)
        except TimeoutError:
            raise RequestError(
                408, "request_timeout", f"the body did not arrive within {body_timeout:g} seconds"
            ) from None
    return _decompressed(body, encoding, limit)


async def _rest_of_body(first: Any, receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    event = first
    while True:
        if event["type"] == "http.disconnect":
            raise RequestError(400, "disconnected", "the client went away before sending the whole body")
        chunk = event.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)
        event = await receive()


def _decompressed(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding not in ("gzip", "x-gzip"):
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise RequestError(400, "invalid_gzip", f"body is not valid gzip: {e}") from None
    if len(body) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise RequestError(400, "invalid_gzip", "body is not valid gzip: it ends too early")
    if inflater.unused_data:
        raise RequestError(400, "invalid_gzip", "body is not valid gzip: bytes follow the compressed data")
    return body


@dataclass(slots=True)
class Payload:
    """A request body, decoded just enough to route and validate it."""

    messages: list[Any]  # raw JSON of each message
    write_key: str | None
    sent_at: str | None = None
    defaults: dict[str, bytes] | None = None
    forced_type: str | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_payload(body: bytes, kind: str, *, find_write_key: bool = True) -> Payload:
    """Decode a body for `/v1/{kind}`; a body that is not usable at all raises RequestError.

    Without HTTP Basic auth the write key is looked for in the body: at its top, or in the
    first message that carries one (analytics-next puts it in every message).
    """
    if not body.strip():
        raise RequestError(400, "invalid_json", "body is empty; send a JSON object")
    try:
        if kind in BATCH_PATHS:
            batch = BATCH.decode(body)
            if batch.batch is None:
                raise RequestError(400, "invalid_request", "a batch body needs 'batch', a list of messages")
            write_key = _text(batch.writeKey)
            if write_key is None and find_write_key:
                for raw in batch.batch:
                    try:
                        write_key = _text(FIELDS.decode(raw).writeKey)
                    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
                        continue
                    if write_key:
                        break
            defaults = {k: bytes(v) for k in ("context", "integrations") if is_object(v := getattr(batch, k))}
            if batch.sentAt is not None:
                try:
                    parse_time(batch.sentAt, "sentAt", cached=True)
                except InvalidMessage as e:
                    raise RequestError(400, "invalid_request", str(e)) from None
            if len(batch.batch) > MAX_BATCH_MESSAGES:
                raise RequestError(
                    400,
                    "too_many_messages",
                    f"a batch of {len(batch.batch)} items: no valid batch under 500 KB holds more than "
                    f"{MAX_BATCH_MESSAGES}",
                )
            return Payload(batch.batch, write_key, batch.sentAt, defaults or None)
        fields = FIELDS.decode(body)
        return Payload([body.strip()], _text(fields.writeKey), forced_type=SINGLE_PATHS[kind])
    except msgspec.ValidationError as e:  # (a DecodeError too: test it first)
        if "- at `$.batch`" in str(e):
            raise RequestError(
                400, "invalid_request", "a batch body needs 'batch', a list of messages"
            ) from None
        raise RequestError(400, "invalid_request", "body must be a JSON object") from None
    except msgspec.DecodeError as e:
        raise RequestError(400, "invalid_json", f"body is not valid JSON: {e}") from None
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_json", "body is not valid UTF-8") from None
    except RecursionError:
        raise RequestError(
            400, "too_deep", f"body nests objects or arrays too deeply; the limit is {MAX_DEPTH} levels"
        ) from None


def basic_auth_user(header: str) -> str | None:
    """The user part of `Authorization: Basic base64(user:password)`: Segment's write key."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII at all, or not UTF-8
        return None
    return decoded.partition(":")[0] or None


def validate_all(
    payload: Payload, source: Source, received_at: float
) -> tuple[list[Envelope], list[Rejection]]:
    accepted: list[Envelope] = []
    rejected: list[Rejection] = []
    forced, defaults, sent_at, name = payload.forced_type, payload.defaults, payload.sent_at, source.name
    for index, raw in enumerate(payload.messages):
        try:
            msg = accept(
                raw, forced_type=forced, defaults=defaults, received_at=received_at, batch_sent_at=sent_at
            )
        except InvalidMessage as e:
            rejected.append(Rejection(index, _message_id_of(raw), str(e)))
            continue
        except Exception as e:  # a message our checks did not foresee: refused, never a 500
            log.warning("message could not be read", error=f"{type(e).__name__}: {e}"[:300])
            rejected.append(Rejection(index, _message_id_of(raw), "message could not be read"))
            continue
        accepted.append(Envelope(name, msg.message_id, msg.type, msg.body, received_at, sent_at, msg.user))
    return accepted, rejected


def _message_id_of(raw: Any) -> str | None:
    try:
        return _text(FIELDS.decode(raw).messageId)
    except Exception:  # invalid JSON, UTF-8 or nesting: the rejection has no id to give
        return None


def rejection_report(rejected: list[Rejection]) -> dict[str, Any]:
    """The rejected messages, the first few listed: an answer stays small whatever was sent."""
    report: dict[str, Any] = {"rejected": [r.as_dict() for r in rejected[:MAX_REJECTIONS_LISTED]]}
    if len(rejected) > MAX_REJECTIONS_LISTED:
        report["rejectedCount"] = len(rejected)
    return report


class IngestEndpoint:
    """`POST /v1/{kind}` as a bare ASGI app."""

    def __init__(
        self,
        config: Config,
        queue: Queue,
        clock: Callable[[], float] = time.time,
        backpressure: Backpressure | None = None,
        health: StoreHealth | None = None,
        forgotten: Callable[[], Forgotten] | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.clock = clock
        self.backpressure = backpressure
        self.health = health
        self.forgotten = forgotten  # people suppressed by a right-to-be-forgotten request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope["headers"])
        status, payload, extra = await self.handle(scope["path"][4:], headers, receive)
        body = orjson.dumps(payload)
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        if headers.origin:
            response_headers.append((b"access-control-allow-origin", b"*"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(
        self, kind: str, headers: Headers, receive: Receive
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        if kind not in SINGLE_PATHS and kind not in BATCH_PATHS:
            return 404, {"success": False, "code": "not_found", "message": f"unknown endpoint /v1/{kind}"}, []
        try:
            body = await read_body(headers, receive, body_timeout=self.config.body_timeout_s)
            basic = basic_auth_user(headers.authorization) if headers.authorization else None
            payload = decode_payload(body, kind, find_write_key=basic is None)
            write_key = basic or payload.write_key
            if write_key is None:
                raise RequestError(
                    401,
                    "missing_write_key",
                    "no write key: send it as HTTP Basic user or as 'writeKey' in the body",
                )
            source = self.config.source_for_write_key(write_key)
            if source is None:
                raise RequestError(401, "invalid_write_key", "the write key is not valid")
        except RequestError as err:
            INGEST_REQUESTS.labels(str(err.status)).inc()
            log.info(
                "request refused", path=f"/v1/{kind}", status=err.status, code=err.code, reason=err.message
            )
            extra = [(b"www-authenticate", b'Basic realm="hubspot-relay"')] if err.status == 401 else []
            if err.code in _BODY_LEFT_UNREAD:  # the rest of the body is not worth reading: hang up
                extra.append((b"connection", b"close"))
            return err.status, {"success": False, "code": err.code, "message": err.message}, extra
        if self.backpressure is not None and (full := self.backpressure.refusal(source.name)):
            INGEST_REQUESTS.labels("429").inc()
            return (
                429,
                {"success": False, "code": full.code, "message": full.message},
                [(b"retry-after", str(full.retry_after).encode())],
            )

        accepted, rejected = validate_all(payload, source, self.clock())
        if rejected:
            _count(source.name, "rejected", len(rejected))
            log.info(
                "messages rejected", source=source.name, count=len(rejected), first_reason=rejected[0].reason
            )
            if not accepted:
                INGEST_REQUESTS.labels("400").inc()
                message = (
                    rejected[0].reason if len(rejected) == 1 else f"all {len(rejected)} messages are invalid"
                )
                return (
                    400,
                    {
                        "success": False,
                        "code": "invalid_message",
                        "message": message,
                        **rejection_report(rejected),
                    },
                    [],
                )
        accepted = self.unsuppressed(source.name, accepted)
        added = await self.store(source.name, accepted) if accepted else 0
        if added is None:
            INGEST_REQUESTS.labels("503").inc()
            return (
                503,
                {
                    "success": False,
                    "code": "unavailable",
                    "message": "the relay could not store the messages; retry",
                },
                [(b"retry-after", b"1")],
            )
        _count(source.name, "accepted", len(accepted))
        if self.backpressure is not None:
            self.backpressure.added(source.name, added)
        _REQUESTS_OK.inc()
        if rejected:
            return 200, {"success": True, "accepted": len(accepted), **rejection_report(rejected)}, []
        return 200, _SUCCESS, []

    def unsuppressed(self, source: str, accepted: list[Envelope]) -> list[Envelope]:
        """A suppressed person's messages are answered as accepted (as Segment does: clients must
        not retry them) and dropped before storage."""
        view = self.forgotten() if self.forgotten is not None else None
        if not view or not view.suppressed:
            return accepted
        kept = []
        for env in accepted:
            try:
                message = orjson.loads(env.body)
            except orjson.JSONDecodeError:
                message = None
            if isinstance(message, dict) and subjects_of(message) & view.suppressed:
                continue
            kept.append(env)
        if len(kept) < len(accepted):
            _count(source, "suppressed", len(accepted) - len(kept))
        return kept

    async def store(self, source: str, accepted: list[Envelope]) -> int | None:
        """Append to the queue; None when it failed (the store's failure is what /health says)."""
        try:
            added = await self.queue.append(accepted)
        except Exception as e:
            if self.health is not None and self.health.failed(e):
                log.warning(
                    "the queue's store refused messages",
                    source=source,
                    count=len(accepted),
                    error=self.health.error,
                )
            else:
                log.exception("queue append failed", source=source, count=len(accepted))
            return None
        if self.health is not None:
            self.health.answered()
        return added


_SUCCESS: dict[str, Any] = {"success": True}
_BODY_LEFT_UNREAD = frozenset({"request_timeout", "request_too_large", "disconnected"})
_REQUESTS_OK = INGEST_REQUESTS.labels("200")
_message_counters: dict[tuple[str, str], Any] = {}


def _count(source: str, outcome: str, n: int) -> None:
    counter = _message_counters.get((source, outcome))
    if counter is None:
        counter = _message_counters[(source, outcome)] = INGEST_MESSAGES.labels(source, outcome)
    counter.inc(n)
    ACTIVITY.add(f"{'received' if outcome == 'accepted' else 'refused'}:{source}", n)


class RelayApp:
    """Routes ingest POSTs straight to the hot path and everything else to Starlette."""

    def __init__(self, ingest: IngestEndpoint, rest: Starlette) -> None:
        self.ingest = ingest
        self.rest = rest
        self.state = rest.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/v1/"):
            await self.ingest(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


class ScopedCORS:
    """CORS for the paths browsers call from other origins (ingest, settings) and for no others:
    the admin API, metrics and demo views must not be readable from any web page."""

    prefixes: tuple[str, ...] = ("/v1/",)

    def __init__(self, app: ASGIApp, allow_headers: Sequence[str] = (), max_age: int = 600) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=allow_headers,
            max_age=max_age,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_ingest_app(
    config: Config,
    queue: Queue,
    *,
    clock: Callable[[], float] = time.time,
    routes: Sequence[Route] = (),
    lifespan: Any = None,
    backpressure: Backpressure | None = None,
    health: StoreHealth | None = None,
    forgotten: Callable[[], Forgotten] | None = None,
) -> RelayApp:
    """The ingest ASGI app; `routes` lets the caller mount more (settings, assets, admin)."""

    async def health_endpoint(request: Request) -> Response:
        if health is not None and not health.up:  # 503: a load balancer takes this relay out
            body: dict[str, Any] = {"status": "unavailable", "store": health.report()}
            return Response(
                orjson.dumps(body),
                503,
                media_type="application/json",
                headers={"Cache-Control": "no-store", "Retry-After": "1"},
            )
        reasons = backpressure.reasons() if backpressure is not None else []
        if reasons:  # still 200: the relay is up and answering, it is refusing new messages
            body = {"status": "degraded", "reasons": reasons}
            return Response(
                orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
            )
        return Response(
            b'{"status":"ok"}', media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    rest = Starlette(
        routes=[Route("/health", health_endpoint, methods=["GET"]), *routes],
        middleware=[Middleware(ScopedCORS, allow_headers=_ALLOWED_HEADERS, max_age=86400)],
        lifespan=lifespan,
    )
    return RelayApp(IngestEndpoint(config, queue, clock, backpressure, health, forgotten), rest)
