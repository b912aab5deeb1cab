"""Fault injection: 5xx errors, added latency, hung requests and 429 storms, per endpoint.

Configured with `POST /_sandbox/faults` (see `Faults.configure`); a seeded random generator
makes a faulty run repeatable.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import Any

import msgspec


class FaultRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    match: str = "*"  # fnmatch pattern over "METHOD /path", e.g. "POST /crm/v3/objects/*/batch/*"
    error_rate: float = 0.0  # share of matching calls answered with `status`
    status: int = 502
    latency_ms: int = 0  # added to every matching call
    timeout_rate: float = 0.0  # share of matching calls that hang `timeout_s`, then get a 504
    timeout_s: float = 30.0
    rate_limit_storm: int = 0  # the next N matching calls get a 429
    storm_policy: str = "TEN_SECONDLY_ROLLING"


class FaultSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rules: list[FaultRule] = msgspec.field(default_factory=list)
    seed: int | None = None


@dataclass
class Decision:
    latency_s: float = 0.0
    hang_s: float = 0.0
    status: int | None = None  # a 5xx to answer instead of the real response
    storm_policy: str | None = None


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    injected: int = 0

    def configure(self, raw: Any) -> None:
        spec = msgspec.convert(raw, FaultSpec)
        for rule in spec.rules:
            if not (0 <= rule.error_rate <= 1 and 0 <= rule.timeout_rate <= 1):
                raise ValueError("error_rate and timeout_rate are shares between 0 and 1")
            if not 500 <= rule.status <= 599:
                raise ValueError("status must be a 5xx")
            if rule.storm_policy not in ("TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"):
                raise ValueError("storm_policy is TEN_SECONDLY_ROLLING, SECONDLY or DAILY")
        self.rules = list(spec.rules)
        self.rng = random.Random(spec.seed)

    def as_json(self) -> dict[str, Any]:
        return {"rules": msgspec.to_builtins(self.rules), "injected": self.injected}

    def decide(self, method: str, path: str) -> Decision:
        decision = Decision()
        target = f"{method} {path}"
        for rule in self.rules:
            if not (fnmatch.fnmatchcase(target, rule.match) or fnmatch.fnmatchcase(path, rule.match)):
                continue
            decision.latency_s += rule.latency_ms / 1000
            if rule.rate_limit_storm > 0 and decision.storm_policy is None:
                rule.rate_limit_storm -= 1
                decision.storm_policy = rule.storm_policy
            if rule.timeout_rate and self.rng.random() < rule.timeout_rate:
                decision.hang_s = max(decision.hang_s, rule.timeout_s)
            if rule.error_rate and decision.status is None and self.rng.random() < rule.error_rate:
                decision.status = rule.status
        if decision.storm_policy or decision.hang_s or decision.status:
            self.injected += 1
        return decision
