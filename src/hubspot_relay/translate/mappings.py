"""Mappings: any Segment call to any HubSpot object, declared in the configuration.

```toml
[[accounts.mappings]]
name = "orders"
when = { type = "track", event = "Order Completed" }
object = "deals"
id_property = "segment_order_id"
id = "properties.order_id"
properties = { dealname = "properties.order_id", amount = "properties.revenue", dealstage = "'closedwon'" }
associate = [{ to = "contact" }, { to = "company", label = "Primary" }]
```

A value is an expression: a path into the message (`properties.order_id`, `traits.email`,
`context.groupId`, `timestamp`, `userId`; `item.` for the element of `each`), a quoted literal
(`'closedwon'`, a number), or a transform of expressions: `lowercase(x)`, `number(x)`, `date(x)`
(the day, for a date property), `join(x, y, ...)` (text end to end). `each = "properties.products"`
makes one record per element of that array; its `associate` may name another mapping (the line
items' deal). Pure: parsing and evaluation only; delivery sends what `records` returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import MappingError

TYPES = ("identify", "track", "page", "screen", "group")
TRANSFORMS = ("lowercase", "number", "date", "join")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_PROPERTY = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_$@-]+$")


# ---- expressions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]


Expr = Path | Literal | Call


def parse(text: str, key: str) -> Expr:
    """An expression, or MappingError naming `key`."""
    parser = _Parser(text, key)
    expr = parser.expr()
    parser.skip()
    if parser.pos != len(text):
        raise MappingError(f"{key}: unexpected {text[parser.pos :]!r} in {text!r}")
    return expr


class _Parser:
    def __init__(self, text: str, key: str) -> None:
        self.text, self.key, self.pos = text, key, 0

    def fail(self, what: str) -> MappingError:
        return MappingError(
            f"{self.key}: {what} in {self.text!r} (a path, a 'quoted' value, or {', '.join(TRANSFORMS)})"
        )

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def expr(self) -> Expr:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("an expression is missing")
        ch = self.text[self.pos]
        if ch in "'\"":
            end = self.text.find(ch, self.pos + 1)
            if end < 0:
                raise self.fail("an unclosed quote")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return Literal(value)
        match = re.compile(r"-?\d+(\.\d+)?").match(self.text, self.pos)
        if match and (match.end() == len(self.text) or self.text[match.end()] in " ,)"):
            self.pos = match.end()
            number = match.group(0)
            return Literal(float(number) if "." in number else int(number))
        match = re.compile(r"[A-Za-z0-9_$@.-]+").match(self.text, self.pos)
        if not match:
            raise self.fail(f"unexpected {ch!r}")
        word = match.group(0)
        self.pos = match.end()
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            if word not in TRANSFORMS:
                raise self.fail(f"{word!r} is not a transform")
            self.pos += 1
            args = [self.expr()]
            self.skip()
            while self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                args.append(self.expr())
                self.skip()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail("a ')' is missing")
            self.pos += 1
            if word != "join" and len(args) != 1:
                raise self.fail(f"{word}() takes one value")
            return Call(word, tuple(args))
        parts = tuple(word.split("."))
        if not all(_SEGMENT.match(p) for p in parts):
            raise self.fail(f"{word!r} is not a path")
        return Path(parts)


def evaluate(expr: Expr, msg: dict[str, Any], item: Any = None) -> Any:
    """The expression's value for this message (None when a path leads nowhere)."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Path):
        value: Any = {**msg, "item": item} if item is not None else msg
        for part in expr.parts:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value
    values = [evaluate(a, msg, item) for a in expr.args]
    if expr.name == "join":
        return None if any(v is None for v in values) else "".join(_text(v) for v in values)
    (value,) = values
    if value is None:
        return None
    if expr.name == "lowercase":
        return _text(value).lower()
    if expr.name == "number":
        try:
            number = float(str(value).strip().replace(",", ""))
        except ValueError:
            return None
        return int(number) if number.is_integer() else number
    if expr.name == "date":
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return when.astimezone(UTC).date().isoformat()
    raise AssertionError(expr.name)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---- mappings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Association:
    to: str  # "contact", "company", or another mapping's name
    label: str | None = None
    id: Expr | None = None  # for a company: which one (default: context.groupId)


@dataclass(frozen=True)
class Mapping:
    name: str
    type: str
    event: str | None
    object: str
    id_property: str
    id: Expr
    properties: dict[str, Expr]
    associate: tuple[Association, ...] = ()
    each: Expr | None = None
    replace: bool = False  # the built-in behaviour for these messages no longer applies

    def matches(self, msg: dict[str, Any]) -> bool:
        if msg.get("type") != self.type:
            return False
        if self.event is None:
            return True
        event = msg.get("event")
        # as event_names match: whatever the case and surrounding spaces
        return isinstance(event, str) and event.strip().casefold() == self.event.strip().casefold()


@dataclass
class MappedRecord:
    """One record a message asks for: upserted by `id_property` = `id`, then associated."""

    mapping: str
    object: str
    id_property: str
    id: str
    properties: dict[str, Any]
    associate: list[tuple[Association, str | None]] = field(default_factory=list)  # (what, target key)


_COMPANY = Path(("context", "groupId"))


def records(mapping: Mapping, msg: dict[str, Any]) -> list[MappedRecord]:
    """The records `mapping` makes of `msg`: one, or one per element of `each`. A record whose
    id cannot be read from the message is not made (MappingError says which)."""
    items: list[Any] = [None]
    if mapping.each is not None:
        found = evaluate(mapping.each, msg)
        if not isinstance(found, list):
            return []
        items = found
    out = []
    for index, item in enumerate(items):
        record_id = evaluate(mapping.id, msg, item)
        if record_id in (None, ""):
            where = f" (element {index} of the list)" if mapping.each is not None else ""
            raise MappingError(f"mapping {mapping.name!r}: no id in the message{where}")
        props = {}
        for name, expr in mapping.properties.items():
            value = evaluate(expr, msg, item)
            if value is not None:
                props[name] = value
        targets: list[tuple[Association, str | None]] = []
        for a in mapping.associate:
            if a.to == "company":
                company = evaluate(a.id or _COMPANY, msg, item)
                targets.append((a, str(company) if company not in (None, "") else None))
            else:
                targets.append((a, None))
        out.append(
            MappedRecord(mapping.name, mapping.object, mapping.id_property, _text(record_id), props, targets)
        )
    return out


def parse_mapping(raw: dict[str, Any], key: str, others: set[str]) -> Mapping:
    """A `[[accounts.mappings]]` table; `others` are the names of the account's mappings."""
    known = {"name", "when", "object", "id_property", "id", "properties", "associate", "each", "replace"}
    unknown = set(raw) - known
    if unknown:
        raise MappingError(f"{key}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise MappingError(f"{key}.name: a name of letters, digits, '-' or '_', like \"orders\"")
    when = raw.get("when")
    if not isinstance(when, dict) or when.get("type") not in TYPES or set(when) - {"type", "event"}:
        raise MappingError(f'{key}.when: {{ type = one of {", ".join(TYPES)}, event = "..." (for a track) }}')
    event = when.get("event")
    if event is not None and (not isinstance(event, str) or when["type"] != "track"):
        raise MappingError(f"{key}.when.event: a track's event name")
    obj = raw.get("object")
    if not isinstance(obj, str) or not obj.strip():
        raise MappingError(
            f"{key}.object: a HubSpot object type: deals, tickets, line_items, a custom object ..."
        )
    id_property = raw.get("id_property")
    if not isinstance(id_property, str) or not _PROPERTY.match(id_property):
        raise MappingError(f"{key}.id_property: a unique property of {obj}, like segment_order_id")
    if not isinstance(raw.get("id"), str):
        raise MappingError(
            f'{key}.id: an expression giving the record\'s {id_property}, like "properties.order_id"'
        )
    props = raw.get("properties") or {}
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise MappingError(f'{key}.properties: {{ property = "expression", ... }}')
    for prop in props:
        if not _PROPERTY.match(prop):
            raise MappingError(f"{key}.properties.{prop}: a HubSpot property name (lowercase, digits, '_')")
    associate = []
    for i, a in enumerate(raw.get("associate") or []):
        akey = f"{key}.associate[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("to"), str) or set(a) - {"to", "label", "id"}:
            raise MappingError(
                f'{akey}: {{ to = "contact" | "company" | another mapping\'s name, label = "..." }}'
            )
        if a["to"] not in ("contact", "company") and a["to"] not in others:
            raise MappingError(f"{akey}.to: {a['to']!r} is not contact, company or a mapping of this account")
        if a["to"] == name:
            raise MappingError(f"{akey}.to: a mapping cannot associate its records with themselves")
        label = a.get("label")
        if label is not None and not isinstance(label, str):
            raise MappingError(f"{akey}.label: an association label's name")
        associate.append(Association(a["to"], label, parse(a["id"], f"{akey}.id") if "id" in a else None))
    each = raw.get("each")
    if each is not None and not isinstance(each, str):
        raise MappingError(f'{key}.each: the path of a list in the message, like "properties.products"')
    replace = raw.get("replace", False)
    if not isinstance(replace, bool):
        raise MappingError(f"{key}.replace: true or false")
    return Mapping(
        name=name,
        type=when["type"],
        event=event,
        object=obj.strip(),
        id_property=id_property,
        id=parse(raw["id"], f"{key}.id"),
        properties={p: parse(v, f"{key}.properties.{p}") for p, v in props.items()},
        associate=tuple(associate),
        each=parse(each, f"{key}.each") if each else None,
        replace=replace,
    )


def parse_mappings(raw: Any, key: str) -> tuple[Mapping, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MappingError(f"{key}: a list of [[accounts.mappings]] tables")
    names = [m.get("name") for m in raw if isinstance(m, dict)]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise MappingError(f"{key}: two mappings are named {sorted(map(str, dupes))[0]!r}")
    others = {n for n in names if isinstance(n, str)}
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise MappingError(f"{key}[{i}]: a table")
        out.append(parse_mapping(m, f"{key}[{i}]", others))
    return tuple(out)
