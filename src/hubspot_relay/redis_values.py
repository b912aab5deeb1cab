"""Redis answers as Python values. redis-py types every reply as `bytes | str` (it cannot know
whether a client decodes: the queue's does not, the identity map's does); these turn a reply into
what the caller means, so a type checker sees `str` or `bytes` and either client works."""

from __future__ import annotations

from collections.abc import Mapping


def text(value: bytes | str | memoryview | None) -> str:
    """A reply as text (our keys, ids and names are UTF-8)."""
    if value is None:
        raise ValueError("Redis answered nothing where a value was expected")
    if isinstance(value, str):
        return value
    return bytes(value).decode()


def raw(value: bytes | str | memoryview | None) -> bytes:
    """A reply as the bytes that were stored."""
    if value is None:
        raise ValueError("Redis answered nothing where a value was expected")
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def fields(entry: Mapping[bytes | str, bytes | str] | None) -> dict[bytes, bytes]:
    """A hash or stream entry's fields, keyed by bytes whatever the client decoded."""
    if entry is None:
        return {}
    return {raw(k): raw(v) for k, v in entry.items()}
