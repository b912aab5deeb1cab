"""A bounded window of recently seen message keys, for recognising a client's retries."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable


class RecentKeys:
    """The last `size` keys claimed, oldest forgotten first; every operation is O(1).

    A set answers "seen?"; a deque remembers the order in which to forget. (An ordered dict
    trimmed from the front is O(n) per trim: its deleted slots are scanned again each time.)
    """

    def __init__(self, size: int, keys: Iterable[Hashable] = ()) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        self._seen: set[Hashable] = set()
        self._order: deque[Hashable] = deque()
        for key in keys:
            self.claim(key)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen

    def claim(self, key: Hashable) -> bool:
        """Remember `key`; False when it is already in the window (a duplicate)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        while len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True

    def claim_new(self, keys: Iterable[Hashable]) -> list[bool]:
        """`claim` for many keys at once (a batch), trimming the window once at the end."""
        seen, order = self._seen, self._order
        out = []
        for key in keys:
            if key in seen:
                out.append(False)
            else:
                seen.add(key)
                order.append(key)
                out.append(True)
        while len(order) > self.size:
            seen.discard(order.popleft())
        return out

    def release(self, key: Hashable) -> None:
        """Forget `key` again (its message was not stored after all)."""
        self._seen.discard(key)
