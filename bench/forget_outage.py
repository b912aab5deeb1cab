#!/usr/bin/env python3
"""The right to be forgotten through a HubSpot that refuses GDPR deletes for minutes.

The sandbox (in this process, at HubSpot's latency) holds `--people` contacts. Right-to-be-
forgotten requests for all of them are made at once, then HubSpot answers every GDPR delete with
a 503 for `--outage-s`, then with 429s (a storm) for as long again, then normally. The relay's
forgetter runs as it does in `hubspot-relay serve` (one pass a second, each request retried with
its own backoff). Reported: each request's status over time, how long after HubSpot recovered
every request was FINISHED, the attempts made, and whether any contact is left in HubSpot.

usage: bench/forget_outage.py [--people 20] [--outage-s 60] [--latency-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from hubspot_relay.config import sandbox_account
from hubspot_relay.delivery.stages.deletions import Portal
from hubspot_relay.forgetting import Forgetter, ForgottenView
from hubspot_relay.hubspot.client import HubSpotClient
from hubspot_relay.hubspot.ratelimit import AccountLimiter
from hubspot_relay.queue.sqlite import SQLiteQueue
from hubspot_relay.sandbox import PortalSettings, create_sandbox_app
from hubspot_relay.state.identity import IdentityMap
from hubspot_relay.state.regulations import SQLiteRegulations

AUTH = {"Authorization": "Bearer sandbox-token"}


async def main(people: int, outage_s: float, latency_ms: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="forget-outage-"))
    sandbox = create_sandbox_app([PortalSettings()])
    inspect = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox")
    account = dataclasses.replace(sandbox_account(), api_base="http://sandbox", track_base="http://sandbox")
    limiter = AccountLimiter(account.limits.per_10s, account.limits.per_day)
    client = HubSpotClient(account, limiter, transport=httpx.ASGITransport(app=sandbox))
    emails = [f"person{i}@example.com" for i in range(people)]
    for email in emails:  # the contacts HubSpot holds
        r = await inspect.post(
            "/crm/v3/objects/contacts", json={"properties": {"email": email}}, headers=AUTH
        )
        r.raise_for_status()
    queue = SQLiteQueue(folder / "queue.sqlite3")
    await queue.open()
    identity = IdentityMap(folder / "identity.sqlite3")
    for i, email in enumerate(emails):
        identity.link("web", [f"user-{i}"], email)
    store = SQLiteRegulations(folder / "regulations.sqlite3")
    forgetter = Forgetter(store, ForgottenView(store), queue, identity, [Portal(client)])
    latency = {"match": "*", "latency_ms": latency_ms}
    gdpr = "POST */gdpr-delete"
    await inspect.post(
        "/_sandbox/faults", json={"rules": [latency, {"match": gdpr, "error_rate": 1.0, "status": 503}]}
    )
    ids = [forgetter.submit("SUPPRESS_WITH_DELETE", "USER_ID", [f"user-{i}"]).id for i in range(people)]
    stop = asyncio.Event()
    runner = asyncio.create_task(forgetter.run(stop))
    started = time.monotonic()
    timeline: list[tuple[float, Counter[str]]] = []

    async def watch_until(seconds: float) -> None:
        while time.monotonic() - started < seconds:
            statuses = Counter(r.status for r in (store.get(i) for i in ids) if r is not None)
            timeline.append((time.monotonic() - started, statuses))
            await asyncio.sleep(5)

    await watch_until(outage_s)
    storm = {"match": gdpr, "rate_limit_storm": 1_000_000}
    await inspect.post("/_sandbox/faults", json={"rules": [latency, storm]})
    await watch_until(2 * outage_s)
    await inspect.post("/_sandbox/faults", json={"rules": [latency]})
    recovered = time.monotonic() - started
    done_at = None
    while time.monotonic() - started < 2 * outage_s + 300:
        regs = [store.get(i) for i in ids]
        statuses = Counter(r.status for r in regs if r is not None)
        timeline.append((time.monotonic() - started, statuses))
        if statuses.get("FINISHED", 0) == people:
            done_at = time.monotonic() - started
            break
        await asyncio.sleep(1)
    stop.set()
    await runner
    regs = [r for r in (store.get(i) for i in ids) if r is not None]
    attempts = [r.detail.get("attempts", 0) for r in regs]
    left = 0
    for email in emails:
        r = await inspect.get(f"/crm/v3/objects/contacts/{email}?idProperty=email", headers=AUTH)
        left += r.status_code == 200
    calls = (await inspect.get("/_sandbox/calls")).json()
    print(
        f"people {people}, outage: {outage_s:.0f} s of 503s then {outage_s:.0f} s of 429s, "
        f"latency {latency_ms} ms"
    )
    for t, statuses in timeline[:: max(1, len(timeline) // 12)]:
        print(f"  t={t:6.1f} s  {dict(statuses)}")
    print(f"HubSpot answered normally from t={recovered:.1f} s")
    if done_at is None:
        print("NOT every request FINISHED within 300 s of recovery")
    else:
        print(f"every request FINISHED at t={done_at:.1f} s ({done_at - recovered:.1f} s after recovery)")
    print(f"attempts per request: min {min(attempts)}, max {max(attempts)} (retries while refused)")
    print(f"statuses at the end: {dict(Counter(r.status for r in regs))}; contacts left in HubSpot: {left}")
    print(f"GDPR delete calls by status: { {k: v for k, v in calls['by_status'].items()} }")
    store.close()
    identity.close()
    await queue.close()
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.people, args.outage_s, args.latency_ms))
