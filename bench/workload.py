"""A reference workload of Segment messages, shaped like a real site's: per user 0-2 anonymous
pages, one identify (email as a trait, or as the userId for 30% of users), then tracks and pages
under the userId; about 10% identify, 60% track, 30% page, in time order. Deterministic for a
seed; `--workload FILE` in the benches replays another such file instead."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("Signed Up", {}),
    ("Viewed Product", {"sku": "SKU-{n}", "category": "Tools"}),
    ("Added to Cart", {"sku": "SKU-{n}", "quantity": 1}),
    ("Order Completed", {"order_id": "O-{n}", "revenue": 0}),
    ("Plan Upgraded", {"plan": "pro"}),
    ("Invited Teammate", {"invitee_count": 2}),
    ("Bought Item", {}),
    ("Downloaded Whitepaper", {"title": "Scaling HubSpot"}),
]


def generate(users: int, seed: int = 1) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(users):
        anon = str(uuid.UUID(int=rnd.getrandbits(128)))
        uid, email = f"user-{i}", f"user{i}@example.com"
        t = t0 + timedelta(seconds=rnd.randrange(86_400))
        ctx = {
            "library": {"name": "analytics.js", "version": "next-1.84.3"},
            "ip": f"203.0.113.{i % 250}",
            "page": {"path": "/", "url": "https://shop.example/"},
        }

        def add(msg: dict[str, Any], ctx: dict[str, Any] = ctx) -> None:
            nonlocal t
            t += timedelta(seconds=rnd.randrange(1, 600))
            msg.update(
                messageId=str(uuid.UUID(int=rnd.getrandbits(128))),
                context=ctx,
                timestamp=t.isoformat().replace("+00:00", "Z"),
            )
            out.append(msg)

        n_track, n_page, pre = (
            6 + rnd.choice([-2, -1, 0, 0, 1, 2]),
            3 + rnd.choice([-1, 0, 0, 1]),
            rnd.choice([0, 1, 1, 2]),
        )
        for _ in range(min(pre, n_page)):
            add(
                {
                    "type": "page",
                    "anonymousId": anon,
                    "name": "Home",
                    "properties": {"path": "/", "title": "Shop"},
                }
            )
        traits = {
            "firstName": f"First{i}",
            "lastName": f"Last{i}",
            "company": {"name": f"Company {i % 97}"},
            "plan": rnd.choice(["free", "pro", "enterprise"]),
            "Favorite Color": rnd.choice(["red", "blue", None]),
            "Internal Score": rnd.randrange(100),
        }
        if rnd.random() < 0.3:
            add({"type": "identify", "userId": email, "anonymousId": anon, "traits": traits})
            uid = email
        else:
            add(
                {"type": "identify", "userId": uid, "anonymousId": anon, "traits": {**traits, "email": email}}
            )
        kinds = ["track"] * n_track + ["page"] * (n_page - min(pre, n_page))
        rnd.shuffle(kinds)
        for kind in kinds:
            if kind == "page":
                path = rnd.choice(["/pricing", "/docs", "/blog/hubspot"])
                add(
                    {
                        "type": "page",
                        "userId": uid,
                        "name": path.strip("/").title(),
                        "properties": {"path": path, "url": "https://shop.example" + path, "title": path},
                    }
                )
            else:
                name, props = rnd.choice(EVENTS)
                props = {
                    k: (v.format(n=rnd.randrange(1000)) if isinstance(v, str) else v)
                    for k, v in props.items()
                }
                if "revenue" in props:
                    props["revenue"] = round(rnd.uniform(5, 500), 2)
                if rnd.random() < 0.25:
                    props["email"] = email
                add({"type": "track", "userId": uid, "event": name, "properties": props})
    out.sort(key=lambda m: m["timestamp"])
    return out


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
