"""The scale-out queue: Redis (or Valkey) Streams with a consumer group, shared by every relay
process that points at the same server.

Each source's messages are spread over `partitions` streams by user (userId, else anonymousId),
so one user's messages stay in one stream, in order. A stream belongs to one process at a time
(see `partitions.Ownership`): that process reads new entries through the consumer group and
keeps what it leased, retried or handed back in sorted sets beside the stream, so that a message
handed back goes back to its place in line, not to the end. Every operation is one Lua script
(`redis_scripts`): atomic, one round trip.

Durability is Redis's: "a 200 means stored" holds with AOF and `appendfsync always`; with
`everysec`, a crash of the Redis machine can lose the last second (see the README). Delivered
messages are deleted from their stream at once; the dedupe window is a count, as in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from ..errors import QueueUnavailable
from ..redis_values import fields, text
from ..secrets import redacted_url
from . import redis_scripts as lua
from .protocol import OUTCOMES, DeadLetter, Envelope, Leased, Outcome, ReplayFilter, SourceCounts, State

log = structlog.get_logger("hubspot_relay.queue")

DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 64
RECENT_MAX = 100
_APPEND_CHUNK = 2_000  # messages per script call (a long script blocks the server for everyone)


def partition_of(user: str, message_id: str, partitions: int) -> int:
    """The stream a message goes to: by user, so that one user's messages keep their order."""
    return zlib.crc32((user or message_id).encode()) % partitions


def consumer_name() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def client_name(consumer: str) -> str:
    return f"hubspot-relay:{consumer}"


class RedisQueue:
    """`Queue` on Redis Streams. `owned` (set by `Ownership`) limits leasing to the partitions
    this process holds; None (one process, or tests) means all of them."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hubspot-relay",
        partitions: int = DEFAULT_PARTITIONS,
        dedupe_window: int = 200_000,
        clock: Callable[[], float] = time.time,
        consumer: str | None = None,
    ) -> None:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be 1-{MAX_PARTITIONS}")
        self.url = url
        self.prefix = prefix
        self.partitions = partitions
        self.dedupe_window = dedupe_window
        self.consumer = consumer or consumer_name()
        self.owned: set[int] | None = None
        self._clock = clock
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._source_index: dict[str, int] = {}
        self._source_name: dict[int, str] = {}
        self._leased: dict[int, set[int]] = {}  # partition -> ids leased here and not settled yet
        # A call failed on the connection: Redis may have run it and the reply was lost (a lease
        # this process never saw). Before the next lease, leases in our partitions that this
        # process does not hold are made visible again (`reclaim_orphans`).
        self.unsure = False
        self._leasing = asyncio.Lock()  # a lease's reply and a reclaim never cross
        self._rotation = 0

    @property
    def client_name(self) -> str:
        """The name this process's Redis connections carry, so that the others can see it is alive."""
        return client_name(self.consumer)

    @property
    def path(self) -> str:  # what logs and `status` show as the queue's place
        return redacted_url(self.url)

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self, *, appends: bool = True) -> None:
        self._redis = aioredis.Redis.from_url(
            self.url, decode_responses=False, health_check_interval=30, client_name=self.client_name
        )
        try:
            await self._redis.ping()
        except Exception as e:
            await self._redis.aclose()
            self._redis = None
            raise QueueUnavailable(f"cannot reach Redis at {self.path}: {type(e).__name__}: {e}") from None
        for name in (
            "APPEND",
            "LEASE",
            "ACK",
            "RELEASE",
            "RETRY",
            "DEAD",
            "REPLAY",
            "ERASE",
            "RECLAIM",
            "SOURCE_INDEX",
        ):
            self._scripts[name] = self._redis.register_script(getattr(lua, name))
        stored = await self._redis.hget(self._key("meta"), "partitions")
        if stored is None:
            await self._redis.hsetnx(self._key("meta"), "partitions", self.partitions)
            stored = await self._redis.hget(self._key("meta"), "partitions")
        if int(stored or self.partitions) != self.partitions:
            log.warning(
                "the queue in Redis has another partition count; using it",
                configured=self.partitions,
                stored=int(stored or 0),
            )
            self.partitions = int(stored or self.partitions)
        await self._load_sources()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("queue is not open")
        return self._redis

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    async def _load_sources(self) -> None:
        for name, index in (await self.redis.hgetall(self._key("sources"))).items():
            self._source_index[text(name)] = int(index)
            self._source_name[int(index)] = text(name)

    async def source_index(self, source: str) -> int:
        index = self._source_index.get(source)
        if index is None:
            index = int(await self._scripts["SOURCE_INDEX"](args=[self.prefix, source]))
            if index < 0:
                raise ValueError("the Redis queue holds at most 64 sources")
            self._source_index[source] = index
            self._source_name[index] = source
        return index

    async def _source_of(self, index: int) -> str:
        if index not in self._source_name:
            await self._load_sources()
        return self._source_name.get(index, f"#{index}")

    async def check(self) -> None:
        await self.redis.set(self._key("checked_at"), repr(self._clock()))

    # ---- append ---------------------------------------------------------------------------

    async def append(self, envelopes: Sequence[Envelope]) -> int:
        new = 0
        indexes = {name: await self.source_index(name) for name in {env.source for env in envelopes}}
        for start in range(0, len(envelopes), _APPEND_CHUNK):
            args: list[Any] = [self.prefix, self.dedupe_window, RECENT_MAX]
            for env in envelopes[start : start + _APPEND_CHUNK]:
                p = partition_of(env.user, env.message_id, self.partitions)
                sent_at = (env.sent_at or "").replace("|", "")  # a valid time has none
                head = f"{indexes[env.source]}|{p}|{env.type}|{env.received_at!r}|{sent_at}|"
                args += [head + env.message_id, env.body]
            new += int(await self._scripts["APPEND"](args=args))
        return new

    # ---- leasing and outcomes -------------------------------------------------------------

    async def lease(
        self, limit: int, lease_seconds: float, sources: Sequence[str] | None = None
    ) -> list[Leased]:
        if not sources:
            await self._load_sources()
        names = list(sources) if sources else list(self._source_index)
        indexes = [await self.source_index(s) for s in names]
        partitions = sorted(self.owned) if self.owned is not None else list(range(self.partitions))
        streams = [(si, p) for si in indexes for p in partitions]
        if not streams or limit <= 0:
            return []
        self._rotation = (self._rotation + 1) % len(streams)
        streams = streams[self._rotation :] + streams[: self._rotation]
        async with self._leasing:
            if self.unsure:
                await self._reclaim_orphans()
            now = self._clock()
            args: list[Any] = [self.prefix, _ms(now), _ms(now + lease_seconds), limit, self.consumer]
            for si, p in streams:
                args += [si, p]
            async with self._watch():
                flat = await self._scripts["LEASE"](args=args)
            for n in flat[0::8]:
                self._leased.setdefault(int(n) % 64, set()).add(int(n))
        if any(int(si) not in self._source_name for si in flat[1::8]):
            await self._load_sources()
        source_names = self._source_name
        out = []
        for i in range(0, len(flat), 8):
            id_, si, mid, mtype, body, received_at, sent_at, attempts = flat[i : i + 8]
            n = int(id_)
            out.append(
                Leased(
                    n,
                    source_names.get(int(si), f"#{si}"),
                    mid.decode(),
                    mtype.decode(),
                    bytes(body),
                    float(received_at),
                    sent_at.decode() or None,
                    int(attempts),
                )
            )
        out.sort(key=lambda m: m.id)
        return out

    def _settled(self, ids: Iterable[int]) -> None:
        for n in ids:
            held = self._leased.get(n % 64)
            if held is not None:
                held.discard(n)

    def leased_here(self, partition: int) -> int:
        """Messages of `partition` this process leased and has not settled (a partition is handed
        over only once this is 0, so that order holds across processes)."""
        return len(self._leased.get(partition, ()))

    @contextlib.asynccontextmanager
    async def _watch(self) -> AsyncIterator[None]:
        """A call that fails on the connection leaves us unsure what Redis did (see `unsure`)."""
        try:
            yield
        except (redis.RedisError, OSError):
            self.unsure = True
            raise

    async def ack(self, ids: Sequence[int], outcome: Outcome = "delivered") -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        for chunk in _chunks(ids):
            async with self._watch():
                await self._scripts["ACK"](args=[self.prefix, _ms(self._clock()), outcome, *chunk])
            self._settled(chunk)

    async def release(self, ids: Sequence[int]) -> None:
        for chunk in _chunks(ids):
            async with self._watch():
                await self._scripts["RELEASE"](args=[self.prefix, *chunk])
            self._settled(chunk)

    async def retry(self, ids: Sequence[int], delay_seconds: float, error: str) -> None:
        at = _ms(self._clock() + delay_seconds)
        for chunk in _chunks(ids):
            async with self._watch():
                await self._scripts["RETRY"](args=[self.prefix, at, error, *chunk])
            self._settled(chunk)

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        for chunk in _chunks(ids):
            async with self._watch():
                await self._scripts["DEAD"](args=[self.prefix, repr(self._clock()), reason, *chunk])
            self._settled(chunk)

    async def reclaim(self, partitions: Iterable[int]) -> int:
        """Leases in `partitions` that this process does not hold (the process that held them
        before gave them up or died; or their reply was lost): visible again at once."""
        async with self._leasing:
            return await self._reclaim(list(partitions))

    def suspect(self) -> None:
        """Something (the heartbeat) saw Redis fail or lose state: reclaim orphans before leasing."""
        self.unsure = True

    async def _reclaim_orphans(self) -> None:
        partitions = sorted(self.owned) if self.owned is not None else list(range(self.partitions))
        moved = await self._reclaim(partitions)
        self.unsure = False
        if moved:
            log.warning(
                "leases this process no longer held are visible again (a reply lost with Redis)",
                count=moved,
            )

    async def _reclaim(self, partitions: list[int]) -> int:
        await self._load_sources()  # a process that just started knows no source yet
        pairs = [(si, p) for si in sorted(self._source_name) for p in partitions]
        if not pairs:
            return 0
        keep = [n for p in partitions for n in self._leased.get(p, ())]
        args: list[Any] = [self.prefix, len(pairs), *(x for pair in pairs for x in pair), *keep]
        async with self._watch():
            return int(await self._scripts["RECLAIM"](args=args))

    # ---- dead letters ---------------------------------------------------------------------

    async def _dead(self, filter: ReplayFilter | None, limit: float) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        start = "-"
        wanted = set(filter.message_ids) if filter and filter.message_ids else None
        while len(out) < limit:
            page = await self.redis.xrange(self._key("dead"), min=start, count=1000)
            if not page:
                break
            for entry_id, entry in page:
                f = fields(entry)
                d = DeadLetter(
                    int(text(entry_id)[:-2]),
                    await self._source_of(int(f[b"si"])),
                    f[b"m"].decode(),
                    f[b"t"].decode(),
                    f[b"why"].decode(),
                    int(f[b"n"]),
                    float(f[b"at"]),
                    f[b"b"],
                )
                if filter is not None:
                    if filter.source and d.source != filter.source:
                        continue
                    if filter.reason_contains and filter.reason_contains.lower() not in d.reason.lower():
                        continue
                    if wanted is not None and d.message_id not in wanted:
                        continue
                out.append(d)
                if len(out) >= limit:
                    break
            start = "(" + text(page[-1][0])
        return out

    async def dead_letters(self, limit: int = 100, filter: ReplayFilter | None = None) -> list[DeadLetter]:
        return await self._dead(filter, limit)

    async def replay(self, filter: ReplayFilter | None = None) -> int:
        matching = await self._dead(filter, math.inf)
        moved = 0
        for chunk in _chunks([d.id for d in matching]):
            moved += int(await self._scripts["REPLAY"](args=[self.prefix, *chunk]))
        return moved

    # ---- inspection -----------------------------------------------------------------------

    async def counts(self) -> dict[str, SourceCounts]:
        await self._load_sources()
        out: dict[str, SourceCounts] = {}
        for index, name in sorted(self._source_name.items()):
            raw = await self.redis.hgetall(self._key("c", index))
            c = {text(k): int(v) for k, v in raw.items()}
            counts = SourceCounts(
                queued=c.get("queued", 0),
                in_flight=c.get("in_flight", 0),
                retrying=c.get("retrying", 0),
                delivered=c.get("delivered", 0),
                dead=c.get("dead", 0),
                skipped=c.get("skipped", 0),
                waiting=c.get("waiting", 0),
            )
            if counts.queued or counts.retrying:
                counts.oldest_queued_at = await self._oldest(index)
            out[name] = counts
        return out

    async def _oldest(self, index: int) -> float | None:
        """Arrival of the oldest undelivered message of a source (the head of each stream)."""
        pipe = self.redis.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xrange(self._key("s", index, p), count=1)
        heads = [entries[0][1][b"r"] for entries in await pipe.execute() if entries]
        return min(float(r) for r in heads) if heads else None

    async def pending_counts(self) -> dict[str, int]:
        counts = await self.counts()
        return {
            name: c.queued + c.in_flight + c.retrying
            for name, c in counts.items()
            if c.queued + c.in_flight + c.retrying
        }

    async def erase(self, match: Callable[[bytes], bool]) -> list[tuple[str, str]]:
        """Dead letters only: a delivered message leaves its stream when it is acked."""
        chosen = [d for d in await self._dead(None, math.inf) if match(d.body)]
        for chunk in _chunks([d.id for d in chosen]):
            await self._scripts["ERASE"](args=[self.prefix, *chunk])
        return [(d.source, d.message_id) for d in chosen]

    async def erase_ids(self, ids: Sequence[int]) -> None:
        """Nothing to do: an acked message has left its stream already."""

    async def prune_delivered(self, older_than_seconds: float) -> int:
        return 0  # delivered messages leave their stream when acked

    async def recent(self, limit: int = 20) -> list[tuple[str, str, int, str | None, bytes]]:
        """The newest messages: (message id, type, state, last error, body), newest first."""
        ids = [text(i) for i in await self.redis.lrange(self._key("recent"), 0, limit - 1)]
        out = []
        for entry_id in ids:
            n = int(entry_id[:-2])
            si, p = (n // 64) % 64, n % 64
            tail = (si, p)
            entries = await self.redis.xrange(self._key("s", *tail), min=entry_id, max=entry_id)
            if entries:
                f = fields(entries[0][1])
                state, error = State.READY, None
                if await self.redis.zscore(self._key("L", *tail), entry_id) is not None:
                    state = State.LEASED
                elif (err := await self.redis.hget(self._key("E", *tail), entry_id)) is not None:
                    state, error = State.RETRYING, text(err)
                out.append((f[b"m"].decode(), f[b"t"].decode(), int(state), error, f[b"b"]))
                continue
            dead = await self.redis.xrange(self._key("dead"), min=entry_id, max=entry_id)
            if dead:
                f = fields(dead[0][1])
                out.append((f[b"m"].decode(), f[b"t"].decode(), int(State.DEAD), f[b"why"].decode(), f[b"b"]))
            else:
                out.append(("", "", int(State.DELIVERED), None, b"{}"))
        return [row for row in out if row[0]]

    async def messages(self, source: str | None = None, limit: int = 1000) -> list[Leased]:
        """Every undelivered message, oldest first (delivered ones are not kept)."""
        await self._load_sources()
        out: list[Leased] = []
        for index, name in self._source_name.items():
            if source is not None and name != source:
                continue
            for p in range(self.partitions):
                for entry_id, entry in await self.redis.xrange(self._key("s", index, p), count=limit) or []:
                    f = fields(entry)
                    n = int(text(entry_id)[:-2])
                    attempts = await self.redis.hget(self._key("N", index, p), text(entry_id))
                    out.append(
                        Leased(
                            n,
                            name,
                            f[b"m"].decode(),
                            f[b"t"].decode(),
                            f[b"b"],
                            float(f[b"r"]),
                            f[b"a"].decode() or None,
                            int(attempts or 0),
                        )
                    )
        out.sort(key=lambda m: m.id)
        return out[:limit]

    async def durability(self) -> str | None:
        """A warning when Redis is not set up to keep what it acknowledged, else None."""
        try:
            aof = _setting(await self.redis.config_get("appendonly"), "appendonly")
            fsync = _setting(await self.redis.config_get("appendfsync"), "appendfsync")
            policy = _setting(await self.redis.config_get("maxmemory-policy"), "maxmemory-policy")
        except Exception:  # CONFIG may be disabled (managed Redis): say so rather than fail
            return "cannot read Redis's persistence settings (CONFIG GET refused); check them by hand"
        if policy and policy != "noeviction":
            return (
                f"Redis's maxmemory-policy is {policy}: under memory pressure it deletes keys, "
                "queued messages among them; set maxmemory-policy noeviction"
            )
        if aof != "yes":
            return (
                "Redis runs without AOF (appendonly no): a Redis crash loses what the relay "
                "acknowledged since the last snapshot; set appendonly yes and appendfsync always"
            )
        if fsync == "everysec":
            return "Redis fsyncs its AOF every second: a crash of its machine can lose the last second"
        if fsync != "always":
            return f"Redis's appendfsync is {fsync}: acknowledged messages may not be on disk"
        return None


def free_memory(url: str) -> Callable[[object], int | None]:
    """Redis's free memory under `maxmemory` (None with no limit): what back-pressure watches
    instead of the disk, for a Redis queue. Synchronous: back-pressure reads it in a thread."""
    client = redis.Redis.from_url(url)

    def free(_: object) -> int | None:
        info = client.info("memory")
        limit = int(info.get("maxmemory", 0))
        return max(0, limit - int(info.get("used_memory", 0))) if limit else None

    return free


def _setting(reply: dict[Any, Any], name: str) -> str:
    for key, value in reply.items():
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def _ms(t: float) -> int:
    return int(t * 1000)


def _chunks(ids: Sequence[int], size: int = 1000) -> list[list[int]]:
    ids = list(ids)
    return [ids[i : i + size] for i in range(0, len(ids), size)]
