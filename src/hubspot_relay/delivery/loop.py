"""Delivery for one HubSpot account: lease, translate, coalesce, batch, send, settle.

A cycle leases what is queued for the account's sources (up to `lease_batch`), translates each
message, and turns the lot into the fewest calls: one upsert per contact however many messages
touched it (in message order), 100 contacts per call, 500 events per call. Each message is
then acked, retried later (HubSpot or the network failed; backoff with jitter, up to a maximum
age) or dead-lettered with HubSpot's reason (a record HubSpot refuses for good: a rejected
batch is split until the offender is alone, so the others still go through).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from ..config import Account
from ..errors import MACHINE_FAILURES, DailyLimitReached
from ..health import StoreHealth
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError
from ..hubspot.verdicts import SHOWN_AT_START
from ..options import DeliveryOptions
from ..queue.protocol import Leased, Queue
from ..state.identity import Identities
from ..state.shared_cache import SharedCache
from ..translate.subjects import Forgotten
from .catalog import Catalogs
from .context import Context
from .gate import CallGate
from .identities import replay
from .plan import Plan
from .planner import Planner
from .sending import Sender, Straggler, finish
from .settlement import Settlement, ack_paid, hand_back, hand_back_carried, settle
from .stages import batch_stages
from .stages.contacts import CONTACTS, add_late
from .stages.events import EventSender
from .stages.stage import Run, Stage

log = structlog.get_logger("hubspot_relay.deliver")
S = TypeVar("S", bound=Sender)

# With nothing left to lease, the next lease waits this long for the batch in flight (a hung call
# is not waited for longer than this; a backlog does not wait at all).
DRAINED_OVERLAP_WAIT_S = 1.0
# Relay processes sharing a Redis queue see an operator's pause or resume within this long.
PAUSE_RECHECK_S = 2.0


def store_backoff(failures: int) -> float:
    """How long the loop waits for a store that failed `failures` times in a row: 0.2 s, doubling
    up to 5 s (a Redis restart takes about a second; a disk may take longer)."""
    return min(5.0, 0.2 * 2.0 ** max(0, failures - 1))


class Delivery:
    """One account's delivery: the loop, and the parts it composes (a planner, the senders, the
    settlement); see docs/architecture.md for how a message flows through them."""

    def __init__(
        self,
        account: Account,
        options: DeliveryOptions,
        sources: Sequence[str],
        queue: Queue,
        identity: Identities,
        client: HubSpotClient,
        *,
        clock: Callable[[], float] = time.time,
        disabled_sources: Sequence[str] = (),
        cache: SharedCache | None = None,
        processes: Callable[[], int] = lambda: 1,
        machine_failures: tuple[type[BaseException], ...] = MACHINE_FAILURES,
        health: StoreHealth | None = None,
        consent: dict[str, tuple[str, ...]] | None = None,
        forgotten: Callable[[], Forgotten] | None = None,
    ) -> None:
        self.account = account
        self.options = options
        self.sources = list(sources) + list(disabled_sources)
        self.queue = queue
        self.identity = identity
        self.client = client
        self.clock = clock
        self.processes = processes  # relay processes sharing this account's budget (Redis)
        self.machine_failures = machine_failures  # the store failing: never a message's fault
        self._pause_checked = 0.0
        # Leased messages that could not be settled or handed back because the store failed: handed
        # back before anything else is leased, as soon as the store answers again (so they are
        # delivered before any later message about the same contact, and not after the lease).
        self.stranded: set[int] = set()
        self.store_failures = 0  # in a row: the loop waits longer each time (up to a few seconds)
        self.health = health  # what /health says of the store: delivery reports what it sees
        self.paused_until = 0.0
        self.operator_paused = identity.is_paused(account.name)
        # Contacts (by email) and companies ("company:" + groupId) that a batch still in flight
        # holds: a later batch leaves their messages for after it, so that order is kept while
        # batches overlap. Counted, since two batches may hold the same key (one defers to the other).
        self.busy: Tally[str] = Tally()
        self._planning = asyncio.Lock()
        self._last_planned: asyncio.Event | None = None  # set once the batch leased last is planned
        self._freed = asyncio.Event()  # set whenever a batch frees what it held
        self.lingering = 0  # batches waiting only for hung calls (not counted in pipeline_depth)
        self._slot_freed = asyncio.Event()  # set when a batch starts lingering
        self.legacy = account.api_mode == "legacy"
        self.cache = cache  # shared with other relay processes (Redis): catalogs, definitions
        gate = CallGate(self.in_flight_share)
        self.ctx = Context(account, options, identity, client, clock, gate, cache, self.ack_finished)
        self.catalogs = Catalogs(self.ctx)
        # The stages this account's mode runs, in dependency order, and one sender each (shared
        # by the stages that name the same sender: the event stages share the definitions).
        self.stages = batch_stages(self.legacy)
        self.senders: dict[type[Sender], Sender] = {}
        for st in self.stages:
            if st.sender is not None and st.sender not in self.senders:
                self.senders[st.sender] = st.make(self.ctx, self.catalogs)
        self.planner = Planner(
            account.name,
            options,
            legacy=self.legacy,
            disabled=disabled_sources,
            clock=clock,
            mappings=account.mappings,
            consent=consent,  # source -> the consent categories HubSpot is mapped to
            forgotten=forgotten,  # the right to be forgotten: whose messages are skipped, erased
        )

    def sender(self, kind: type[S]) -> S:
        """This account's sender of that class (made for the stages that name it, or now)."""
        found = self.senders.get(kind)
        if found is None:
            found = self.senders[kind] = kind(self.ctx, self.catalogs)
        assert isinstance(found, kind)
        return found

    @property
    def events(self) -> EventSender:
        return self.sender(EventSender)

    def pause(self, paused: bool) -> None:
        """An operator's pause (kept across restarts): nothing is leased until resumed."""
        self.operator_paused = paused
        self.identity.set_paused(self.account.name, paused)
        log.warning(
            "delivery paused by an operator" if paused else "delivery resumed", account=self.account.name
        )

    # ---- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and deliver until `stop`, with up to `pipeline_depth` batches in flight: the next
        batch is planned and sent while the last one's calls are still out, and a call that hangs
        holds up only the contacts it carries (see `busy`)."""
        log.info(
            "delivery started", account=self.account.name, hub_id=self.account.hub_id, sources=self.sources
        )
        running: set[asyncio.Task[None]] = set()
        await self.warm_up()
        try:
            while not stop.is_set():
                if len(running) - self.lingering >= self.options.pipeline_depth:
                    self._slot_freed.clear()
                    freed = asyncio.create_task(self._slot_freed.wait())
                    await asyncio.wait({*running, freed}, return_when=asyncio.FIRST_COMPLETED)
                    freed.cancel()
                    continue
                # With nothing in flight, a smaller batch gets calls going sooner; the next, full
                # one is planned while its calls are out.
                size = self.options.lease_batch if running else max(1, self.options.lease_batch // 5)
                # A lease waits until the batch leased before it is planned and has handed back
                # what must wait: those messages are then back in line, ahead of anything leased
                # after them, so a user's messages keep their order without holding them.
                if self._last_planned is not None:
                    await self._last_planned.wait()
                if self.store_failures:  # the store failed lately: give it a moment
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=store_backoff(self.store_failures))
                try:
                    leased = await self.lease(size)
                    self.store_failures = 0
                except Exception as e:
                    leased = []
                    if not isinstance(e, self.machine_failures):
                        log.exception("leasing failed", account=self.account.name)
                    else:  # the store is down: nothing is leased, nothing lost; try again soon
                        self.store_failed(e)
                        log.warning(
                            "the queue's store cannot be reached: delivery waits for it",
                            account=self.account.name,
                            error=f"{type(e).__name__}: {e}"[:300],
                            stranded=len(self.stranded),
                        )
                        continue
                if leased:
                    planned = self._last_planned = asyncio.Event()
                    task = asyncio.create_task(
                        self.process(leased, more_waiting=len(leased) >= size, planned=planned),
                        name=f"deliver-{self.account.name}-batch",
                    )
                    running.add(task)
                    task.add_done_callback(running.discard)
                # A lease that was not full means the queue is drained for now: a flush window
                # gathers what arrives meanwhile (a partial call waits for more on its own, see
                # `batch_wait_ms`), so that while clients are still sending, batches keep
                # overlapping. An empty one also gives the batch in flight a second to finish
                # first (what it hands back is then leased at once).
                if len(leased) < size:
                    if running and not leased:
                        await asyncio.wait(running, timeout=DRAINED_OVERLAP_WAIT_S)
                    delay = self.options.flush_ms / 1000
                    if self.paused_until > self.clock():
                        delay = min(60.0, self.paused_until - self.clock())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
            if running:  # a clean stop: let the batches in flight finish (the server bounds this)
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def warm_up(self) -> None:
        """Read what the first batch needs (the contacts' property catalog, the event definitions)
        as delivery starts, not when the first message comes: it then waits for no read, and a
        refused token shows at start-up. Not while paused; a failure is left to the first batch."""
        if self.operator_paused or self.paused_until > self.clock():
            return
        try:
            await self.catalogs.catalog("contacts")
            if not self.legacy:
                await self.events.read_definitions()
        except HubSpotError as e:
            if SHOWN_AT_START(e):
                self.ctx.refused(e, [], Settlement())  # reported as the account's problem
            else:
                log.info(
                    "nothing read ahead: the first batch reads it",
                    account=self.account.name,
                    error=e.describe(),
                )
        except Exception as e:
            log.info("nothing read ahead: the first batch reads it", account=self.account.name, error=str(e))

    async def cycle(self) -> int:
        """Deliver one leased batch; returns how many messages it settled.

        Nothing leased is left in flight: a stop mid-cycle hands the lease back, and a cycle that
        fails anyway (the queue itself failing) retries its messages with backoff.
        """
        leased = await self.lease()
        if leased:
            await self.process(leased, more_waiting=len(leased) >= self.options.lease_batch)
        return len(leased)

    async def lease(self, limit: int | None = None) -> list[Leased]:
        if self.stranded:  # raises while the store is still down: nothing new is leased before
            await hand_back(self.queue, list(self.stranded))
            log.info("handed back what a store failure had left leased", count=len(self.stranded))
            self.stranded.clear()
        if self.cache is not None and self.clock() - self._pause_checked > PAUSE_RECHECK_S:
            # Another relay process may have been told to pause or resume this account.
            self._pause_checked = self.clock()
            self.operator_paused = await asyncio.to_thread(self.identity.is_paused, self.account.name)
        if self.paused_until > self.clock() or self.operator_paused:
            return []
        limit = limit or self.options.lease_batch
        leased = await self.queue.lease(limit, lease_seconds=900, sources=self.sources)
        if self.health is not None:
            self.health.answered()  # a lease is a write on either store
        return leased

    def store_failed(self, error: BaseException) -> None:
        self.store_failures += 1
        if self.health is not None:
            self.health.failed(error)

    async def process(
        self, leased: list[Leased], more_waiting: bool = False, planned: asyncio.Event | None = None
    ) -> None:
        """Deliver and settle one leased batch; `more_waiting` when its lease was full (more is
        queued, so a batch call that is not full can wait for it); `planned` is set once the
        batch is planned (whatever happens), for the next lease to go ahead."""
        settlement = Settlement(
            more_waiting=more_waiting, planned=planned, messages={m.id: m for m in leased}
        )
        try:
            await self.deliver_isolated(leased, settlement)
        except asyncio.CancelledError:
            ours = self._still_ours(leased, settlement)
            try:
                await asyncio.shield(hand_back(self.queue, ours))
            except self.machine_failures:
                self.stranded.update(ours)
            raise
        except Exception as e:
            unsettled = set(self._still_ours(leased, settlement))
            if isinstance(e, self.machine_failures):
                # Settling needs the store that just failed: hand the messages back once it
                # answers (see `lease`), the attempt not counted; never a dead letter for it.
                self.store_failed(e)
                self.stranded.update(unsettled)
                log.warning(
                    "the queue's store failed while settling a batch: its messages are handed back "
                    "once it answers",
                    account=self.account.name,
                    error=f"{type(e).__name__}: {e}"[:300],
                    messages=len(unsettled),
                )
                return
            log.exception("delivery cycle failed", account=self.account.name)
            try:
                await self.give_back(
                    [m for m in leased if m.id in unsettled],
                    f"delivery failed: {type(e).__name__}: {e}",
                )
            except self.machine_failures:
                self.stranded.update(unsettled)
        finally:
            if planned is not None:
                planned.set()

    async def linger(self, stragglers: list[Straggler]) -> None:
        """Wait for calls left behind, this batch no longer counted in `pipeline_depth`: the
        loop leases the next batch meanwhile (what it holds keeps its order, see `busy`)."""
        self.lingering += 1
        self._slot_freed.set()
        try:
            await finish(stragglers)
        finally:
            self.lingering -= 1

    def in_flight_share(self) -> int:
        """Processes that share a budget share `max_in_flight` too (at least 8 each): together
        they keep as many calls out as one would, and one that is killed loses fewer of them."""
        n = max(1, self.processes())
        return max(min(8, self.options.max_in_flight), -(-self.options.max_in_flight // n))

    @staticmethod
    def _still_ours(leased: list[Leased], s: Settlement) -> list[int]:
        """The leased messages not handed back or acked already (those may be another batch's)."""
        return [m.id for m in leased if m.id not in s.released and m.id not in s.acked]

    async def ack_finished(self, s: Settlement, ids: Sequence[int]) -> None:
        await ack_paid(self.queue, self.account.name, s, ids)

    async def give_back(self, leased: list[Leased], reason: str) -> None:
        """Retry with backoff; a message that keeps failing past its maximum age is a dead letter."""
        s = Settlement()
        s.fail([m.id for m in leased], reason[:500], retry_in=0.0)
        await self.settle(leased, s)

    async def deliver_isolated(self, leased: list[Leased], settlement: Settlement) -> None:
        """Deliver and settle `leased`; an unforeseen error is narrowed down by halving the batch
        until the message that causes it is alone, and only that one is dead-lettered."""
        try:
            await self.deliver_batch(leased, settlement)
        except self.machine_failures as e:  # the machine, not a message: all of them wait
            log.warning(
                "the store failed during a batch: its messages go back in line, first",
                account=self.account.name,
                error=f"{type(e).__name__}: {e}"[:300],
            )
            self.store_failed(e)
            self.release_keys(settlement)
            mine = set(self._still_ours(leased, settlement))
            leased, settlement = [m for m in leased if m.id in mine], Settlement(planned=settlement.planned)
            # Handed back, not retried later: ahead of anything newer about the same contacts, the
            # attempt not counted (re-sending what went through is harmless: upserts, event uuids).
            settlement.carried.update(m.id for m in leased)
        except BaseException as e:
            self.release_keys(settlement)
            if not isinstance(e, Exception):
                raise
            mine = set(self._still_ours(leased, settlement))
            ours = [m for m in leased if m.id in mine]
            if len(ours) > 1:
                half = len(ours) // 2
                more = settlement.more_waiting
                known = settlement.messages
                await self.deliver_isolated(ours[:half], Settlement(more_waiting=more, messages=known))
                await self.deliver_isolated(ours[half:], Settlement(more_waiting=more, messages=known))
                return
            if not ours:
                return
            log.exception("message could not be delivered", account=self.account.name)
            leased, settlement = ours, Settlement()
            settlement.fail(
                [ours[0].id], f"hubspot-relay could not deliver this message: {type(e).__name__}: {e}"[:500]
            )
        try:
            await self.settle(leased, settlement)
        finally:
            self.release_keys(settlement)

    async def settle(self, leased: list[Leased], s: Settlement) -> None:
        skipped = await settle(
            self.queue,
            self.account.name,
            leased,
            s,
            retry_max_age_s=self.options.retry_max_age_s,
            now=self.clock(),
        )
        if skipped:  # what status shows (an optimisation's loss at worst: /metrics has them too)
            try:
                await asyncio.to_thread(self.identity.count_skipped, self.account.name, skipped)
            except Exception as e:  # the store failing is reported once by /health, not per batch
                log.warning("skips could not be counted", account=self.account.name, error=type(e).__name__)

    def plan(self, leased: list[Leased], s: Settlement, held: frozenset[str] = frozenset()) -> Plan:
        """Plan a batch (in a worker thread: it reads and writes the identity map). What the map
        knows of everyone in the batch is read at once (a shared map would otherwise cost a round
        trip a message); the planner works on that snapshot alone, and the ties and kept traits
        it returns are written after it, in order."""
        verdicts = Settlement(more_waiting=s.more_waiting)
        batch = self.planner.translate(leased, verdicts)
        snapshot = self.identity.snapshot(self.planner.ids_of(batch))
        try:
            plan = self.planner.plan_translated(batch, snapshot, held, verdicts)
            add_late(plan, replay(self.identity, plan.identity))
        except BaseException:
            self.identity.flush(take=False)  # what was written stands; nothing waiting is taken
            raise
        s.absorb(plan.verdicts)
        return plan

    def hold_keys(self, s: Settlement, keys: set[str]) -> None:
        s.touched |= keys
        self.busy.update(keys)

    def release_keys(self, s: Settlement, keys: set[str] | None = None) -> None:
        """Contacts and companies a batch held are free for later batches (all of them once it is
        settled or failed)."""
        keys = s.touched if keys is None else keys & s.touched
        if not keys:
            return
        self.busy.subtract(keys)
        for key in keys:
            if self.busy[key] <= 0:
                del self.busy[key]
        s.touched = s.touched - keys
        self._freed.set()

    async def deliver_batch(self, leased: list[Leased], settlement: Settlement) -> None:
        """One batch's calls, with the refusals that concern the whole account settled here."""
        try:
            await self.deliver(leased, settlement)
        except HubSpotError as e:  # a call outside the batches (the catalog, definitions) failed
            self.ctx.refused(e, settlement.unfinished([m.id for m in leased]), settlement)
        except DailyLimitReached as e:
            self.paused_until = e.resets_at
            self.identity.set_problem(self.account.name, "daily_limit", str(e))
            log.warning(
                "daily limit reached: delivery paused", account=self.account.name, resumes_at=e.resets_at
            )
            wait = max(1.0, e.resets_at - self.clock())
            settlement.fail(
                settlement.unfinished([m.id for m in leased]), str(e), retry_in=wait, patient=True
            )

    # ---- one batch ------------------------------------------------------------------------

    async def deliver(self, leased: list[Leased], s: Settlement) -> None:
        # Translating and resolving identities reads and writes the identity map: done in a thread,
        # so that ingest keeps answering while a large batch is prepared. One batch plans at a
        # time, seeing what the batches before it hold.
        try:
            async with self._planning:
                held = frozenset(self.busy)
                self._freed.clear()
                plan = await asyncio.to_thread(self.plan, leased, s, held)
                writes = plan.writes
                self.hold_keys(s, writes)
                await hand_back_carried(self.queue, s)
        finally:
            if s.planned is not None:
                s.planned.set()
        if s.released - s.deferred and not plan.calls:
            # Everything waits for a batch in flight: keep this slot until one frees something (a
            # second at most), rather than leasing the same messages again at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), timeout=1.0)
        await self.run_stages(plan, s, writes)

    async def run_stages(self, plan: Plan, s: Settlement, writes: set[str]) -> None:
        """The plan's stages in dependency order (`stages.STAGES`). Everything each message needs
        is owed before anything is sent: a daily limit that stops the batch half-way then knows
        which messages are not finished. An early stage (event definitions) starts with the
        batch; a stage after the contacts waits for their calls that hang, all of them or (one
        that `split`s) only its own contacts'. Once the stages that write are done, later
        batches may write the same contacts (what this batch handed back is in the queue again,
        ahead of them); the contacts of a hung call stay held until it ends."""
        stages = [st for st in self.stages if len(st.items(plan))]
        for st in stages:
            for ids in st.owed(st.items(plan)):
                s.owe(ids)
        run = Run(plan, s)
        stragglers: list[Straggler] = []  # contacts' calls that hang: left to finish on their own
        later: list[tuple[Stage[Any, Any], Any]] = []  # items of those contacts, for after them
        writing = sum(1 for st in stages if st.holds and not st.early)
        try:
            for st in stages:
                if st.early and st.ready(self._sender_of(st)):
                    await st.run(self._sender_of(st), st.items(plan), run)
            for st in stages:
                if st.early:
                    continue
                if writing == 0 and not st.holds:  # the writes are done: free what is not hung
                    hung = _hung(stragglers)
                    self.release_keys(s, {k for k in writes if k.lower() not in hung})
                    writing = -1
                items = st.items(plan)
                if stragglers and CONTACTS.name in self._needs(st):
                    if st.split is None:  # it needs them all (their ids)
                        await self.linger(stragglers)
                        stragglers = []
                    else:  # only the items of contacts whose calls hang wait for them
                        items, wait = st.split(items, _hung(stragglers))
                        if len(wait):
                            later.append((st, wait))
                if len(items):
                    stragglers += await st.run(self._sender_of(st), items, run) or []
                if st.holds:
                    writing -= 1
            if writing == 0:
                self.release_keys(s, {k for k in writes if k.lower() not in _hung(stragglers)})
            if stragglers:
                await self.linger(stragglers)
                stragglers = []
                self.release_keys(s, writes)
                for st, items in later:
                    await st.run(self._sender_of(st), items, run)
        finally:
            if stragglers:  # the batch failed before them: they go no further
                for straggler in stragglers:
                    straggler.task.cancel()
                await asyncio.gather(*(x.task for x in stragglers), return_exceptions=True)
            for task in run.started.values():
                if not task.done():
                    task.cancel()  # the batch stopped before the stage that awaits it
                elif not task.cancelled():
                    task.exception()  # seen (the stage after it handled it, or the batch failed first)

    def _sender_of(self, st: Stage[Any, Any]) -> Sender:
        kind: type[Sender] | None = st.sender
        assert kind is not None
        return self.sender(kind)

    def _needs(self, st: Stage[Any, Any]) -> set[str]:
        """The stages `st` waits for, directly or through others."""
        by_name = {x.name: x for x in self.stages}
        found: set[str] = set()
        todo = list(st.after)
        while todo:
            name = todo.pop()
            if name not in found:
                found.add(name)
                todo.extend(by_name[name].after if name in by_name else ())
        return found


def _hung(stragglers: list[Straggler]) -> set[str]:
    """The contacts (lowercased emails) whose upserts hang."""
    return {key.lower() for straggler in stragglers for key in straggler.keys}
