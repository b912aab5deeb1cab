"""A portal's lists and their members, as the sandbox keeps them (and writes to its state file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PortalLists:
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # listId -> HubSpot's list
    members: dict[str, dict[int, int]] = field(default_factory=dict)  # listId -> record id -> since
    next_id: int = 1

    def snapshot(self) -> dict[str, Any]:
        members = {k: [[r, t] for r, t in v.items()] for k, v in self.members.items()}
        return {"lists": self.lists, "members": members, "next_id": self.next_id}

    def restore(self, data: dict[str, Any]) -> None:
        self.lists = dict(data.get("lists", {}))
        self.members = {k: {int(r): int(t) for r, t in v} for k, v in data.get("members", {}).items()}
        self.next_id = int(data.get("next_id", 1))

    def by_name(self, object_type_id: str, name: str) -> dict[str, Any] | None:
        wanted = name.strip().lower()
        return next(
            (
                x
                for x in self.lists.values()
                if x["objectTypeId"] == object_type_id and x["name"].lower() == wanted
            ),
            None,
        )
