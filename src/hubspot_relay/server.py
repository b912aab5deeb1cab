"""Assembles the relay process: configuration, the queue, and the ASGI app around them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import ports
from .access import Access
from .activity import ACTIVITY, summary
from .admin import AdminState, admin_routes
from .backends import Backend, backend_for
from .config import Config
from .console import console_routes
from .delivery.loop import Delivery
from .delivery.stages.deletions import Portal
from .forgetting import Forgetter, ForgottenView, forget_routes
from .health import StoreHealth
from .hubspot.client import HubSpotClient
from .hubspot.oauth import token_store
from .queue.protocol import Queue, State
from .segment.device import device_routes
from .segment.ingest import RelayApp, create_ingest_app
from .state.identity import Identities
from .translate.subjects import Forgotten

log = structlog.get_logger("hubspot_relay.server")

# Delivered messages are kept this long so a client's retry of an old request is recognised.
DEDUPE_WINDOW_SECONDS = 24 * 3600
_PRUNE_EVERY_SECONDS = 600
# A clean stop gives a delivery cycle in progress this long to finish; then it hands its lease back.
STOP_GRACE_SECONDS = 8.0


@contextlib.contextmanager
def bundled_sandbox(config: Config) -> Iterator[str | None]:
    """With no HubSpot credentials, make sure the local sandbox runs where the account points.

    A sandbox already answering there is used as it is; otherwise one is started as a child
    process, its data kept in the data folder, and stopped with the relay. Yields what was done.
    """
    account = next((a for a in config.accounts if a.sandbox), None)
    if account is None:
        yield None
        return
    base = account.api_base
    try:
        httpx.get(f"{base}/_sandbox/portals", timeout=1).raise_for_status()
        running = True
    except httpx.HTTPError:
        running = False
    if running:
        yield f"using the HubSpot sandbox already running at {base}"
        return
    port = base.rsplit(":", 1)[1]
    if not ports.is_free("127.0.0.1", int(port)):
        raise ports.PortInUse(
            f"port {port}, where the HubSpot sandbox should run, is in use by "
            f"{ports.holder('127.0.0.1', int(port))}: stop it, or set HUBSPOT_SANDBOX_PORT to a free port"
        )
    state = config.data_dir / "sandbox.sqlite3"
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.data_dir / "sandbox.log"  # its banner and errors, out of the relay's terminal
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubspot_relay",
            "sandbox",
            "--port",
            port,
            "--state",
            str(state),
            "--log-level",
            "warning",
        ],
        stdout=log_file,
        stderr=log_file,
        preexec_fn=_die_with_parent,
    )
    log_file.close()  # the child has its own copy
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_sandbox/portals", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the HubSpot sandbox did not start on {base} (see {log_path})"
                    ) from None
                time.sleep(0.1)
        yield f"started the HubSpot sandbox at {base} (data in {state}, log in {log_path})"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, ask for SIGTERM when the relay dies (even by kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _prune_forever(queue: Queue) -> None:
    while True:
        await asyncio.sleep(_PRUNE_EVERY_SECONDS)
        try:
            removed = await queue.prune_delivered(DEDUPE_WINDOW_SECONDS)
            if removed:
                log.info("pruned delivered messages", count=removed)
        except Exception:
            log.exception("pruning delivered messages failed")


async def _summarise_forever(every_s: float, stop: asyncio.Event) -> None:
    """One line every `every_s` about what happened meanwhile (nothing when nothing did)."""
    before = Counter(ACTIVITY.total)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        now = Counter(ACTIVITY.total)
        line = summary(now - before, every_s)
        before = now
        if line:
            log.info(line)


def metrics_endpoint(config: Config, access: Access) -> Any:
    async def metrics(request: Request) -> Response:
        if not config.metrics_public and (refusal := access.admin(request)) is not None:
            return refusal
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def build_deliveries(
    backend: Backend,
    identity: Identities,
    processes: Callable[[], int] = lambda: 1,
    health: StoreHealth | None = None,
    forgotten: Callable[[], Forgotten] | None = None,
) -> list[Delivery]:
    """One delivery loop per HubSpot account that has sources routed to it; with a shared
    backend, each account's budget, catalogs and definitions are shared with the other processes."""
    config = backend.config
    cache = backend.cache()
    deliveries = []
    for account in config.accounts:
        sources = [s.name for s in config.sources if s.account == account.name and s.enabled]
        disabled = [s.name for s in config.sources if s.account == account.name and not s.enabled]
        if not sources and not disabled:
            continue
        client = HubSpotClient(
            account,
            backend.limiter(account),
            timeout=account.delivery.request_timeout_s,
            connect_timeout=account.delivery.connect_timeout_s,
            # an OAuth app's tokens, shared by every process (Redis) or kept in the data folder
            tokens=token_store(account, config.data_dir, cache) if account.oauth else None,
        )
        deliveries.append(
            Delivery(
                account,
                account.delivery,
                sources,
                backend.queue,
                identity,
                client,
                disabled_sources=disabled,
                cache=cache,
                processes=processes,
                machine_failures=backend.machine_failures,
                health=health,
                consent={s.name: s.consent_categories for s in config.sources if s.account == account.name},
                forgotten=forgotten,
            )
        )
    return deliveries


def create_app(
    config: Config,
    queue: Queue | None = None,
    *,
    deliver: bool = True,
    analytics_js_dir: Path | None = None,
) -> RelayApp:
    """The relay's ASGI app; it opens the queue on start-up, runs delivery for each account, and
    closes everything, drained, on shutdown."""
    backend = backend_for(config, queue)
    q = backend.queue
    access = Access(config.admin_token, config.trusted_proxies, config.public_url)
    backpressure = backend.backpressure()
    health = StoreHealth(backend.where, backend.machine_failures)
    admin = AdminState()
    admin.backpressure = backpressure
    admin.health = health
    view = ForgottenView(regulations := backend.regulations())  # the right to be forgotten
    forgetting: dict[str, Forgetter] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await q.open()
        stop = asyncio.Event()
        await backpressure.refresh(q.pending_counts)
        helpers = [
            asyncio.create_task(_prune_forever(q), name="prune"),
            asyncio.create_task(backpressure.watch(q.pending_counts, stop), name="backpressure"),
            asyncio.create_task(health.watch(q.check, stop), name="store-health"),
        ]
        if config.summary_every_s:
            helpers.append(
                asyncio.create_task(_summarise_forever(config.summary_every_s, stop), name="summary")
            )
        log.info("queue open", **backend.log_fields())
        if (warning := await backend.durability_warning()) is not None:
            log.warning("Redis may lose acknowledged messages", detail=warning)
        ownership = backend.ownership() if deliver else None
        if ownership is not None:
            await ownership.beat()
            helpers.append(asyncio.create_task(ownership.run(stop), name="partitions"))
        identity = backend.identity() if deliver else None
        members = (lambda: len(ownership.members)) if ownership is not None else (lambda: 1)
        deliveries = build_deliveries(backend, identity, members, health, view.current) if identity else []
        admin.deliveries, admin.identity = deliveries, identity
        portals = [Portal(d.client, d.options.user_id_property) for d in deliveries]
        forgetting["it"] = Forgetter(regulations, view, q, identity, portals)
        if deliver:
            helpers.append(asyncio.create_task(forgetting["it"].run(stop), name="forget"))
        tasks = [asyncio.create_task(d.run(stop), name=f"deliver-{d.account.name}") for d in deliveries]
        try:
            yield
        finally:
            stop.set()
            await _stop_within(tasks, STOP_GRACE_SECONDS)
            for d in deliveries:
                await d.client.aclose()
            await _stop_within(helpers, 0)
            if ownership is not None:
                with contextlib.suppress(Exception):
                    await ownership.leave()
            await q.close()
            regulations.close()
            if identity:
                identity.close()

    routes = _routes(config, q, access, admin, analytics_js_dir, lambda: forgetting.get("it"))
    app = create_ingest_app(
        config,
        q,
        routes=routes,
        lifespan=lifespan,
        backpressure=backpressure,
        health=health,
        forgotten=view.current,
    )
    app.state.queue = q
    app.state.config = config
    app.state.admin = admin
    return app


def _routes(
    config: Config,
    q: Queue,
    access: Access,
    admin: AdminState,
    analytics_js_dir: Path | None,
    forgetter: Callable[[], Forgetter | None],
) -> list[Route]:
    """Everything the relay serves besides ingest."""

    async def recent() -> list[dict[str, Any]]:
        return [_recent_row(*row) for row in await q.recent(20)]

    return [
        Route("/metrics", metrics_endpoint(config, access), methods=["GET"]),
        *console_routes(access),
        *admin_routes(config, q, access, admin),
        *forget_routes(access, forgetter),
        *device_routes(config, analytics_js_dir=analytics_js_dir, recent=recent, access=access),
    ]


_STATES = {int(state): state.name.lower() for state in State}


def _recent_row(message_id: str, mtype: str, state: int, error: str | None, body: bytes) -> dict[str, Any]:
    """One line of the demo's live view; a message that cannot be read still gets its line."""
    try:
        msg = orjson.loads(body)
        meta = msg.get("_metadata") if isinstance(msg, dict) else None
        bundled = meta.get("bundled") if isinstance(meta, dict) else None
        names = [str(b).lower() for b in bundled] if isinstance(bundled, list) else []
        event = msg.get("event") if isinstance(msg, dict) and isinstance(msg.get("event"), str) else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        names, event = [], None
    note = "HubSpot got it in the browser" if "hubspot" in names else (error or "")
    return {
        "messageId": message_id,
        "type": mtype,
        "event": event,
        "state": _STATES.get(state, str(state)),
        "note": note[:200],
    }


async def _stop_within(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Let tasks finish for `grace` seconds, then cancel what is left (a delivery cycle hands its
    lease back when cancelled) and wait for that."""
    if not tasks:
        return
    if grace > 0:
        await asyncio.wait(tasks, timeout=grace)
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for t, r in zip(tasks, results, strict=True):
        if isinstance(r, Exception):
            log.error("task failed while stopping", task=t.get_name(), error=f"{type(r).__name__}: {r}")
