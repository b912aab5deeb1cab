"""A portal's data and the rules HubSpot applies to it: records, unique values, associations,
event definitions and completions. In memory; `snapshot`/`restore` let the app keep it in a file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..hubspot.lifecycle import is_backwards
from . import errors
from .catalog import Catalog, Property, custom_property, record_properties
from .list_state import PortalLists
from .objects import ObjectType, Registry
from .settings import PortalSettings

# HubSpot's default event properties, which every event definition has.
DEFAULT_EVENT_PROPERTIES = (
    "hs_asset_description",
    "hs_asset_type",
    "hs_browser",
    "hs_campaign_id",
    "hs_city",
    "hs_country",
    "hs_device_name",
    "hs_device_type",
    "hs_element_class",
    "hs_element_id",
    "hs_element_text",
    "hs_language",
    "hs_link_href",
    "hs_operating_system",
    "hs_operating_version",
    "hs_page_content_type",
    "hs_page_id",
    "hs_page_title",
    "hs_page_url",
    "hs_parent_module_id",
    "hs_referrer",
    "hs_region",
    "hs_screen_height",
    "hs_screen_width",
    "hs_touchpoint_source",
    "hs_tracking_name",
    "hs_user_agent",
    "hs_utm_campaign",
    "hs_utm_content",
    "hs_utm_medium",
    "hs_utm_source",
    "hs_utm_term",
)
EVENT_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
MAX_EVENT_PROPERTIES = 50
MAX_EVENT_VALUE_CHARS = 256


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Record:
    id: int
    properties: dict[str, str]
    created_ms: int
    updated_ms: int

    def as_json(
        self, default_read: Sequence[str], wanted: list[str] | None = None, *, new: bool | None = None
    ) -> dict[str, Any]:
        names = wanted if wanted else default_read
        props = {n: self.properties.get(n) for n in names}
        out: dict[str, Any] = {
            "id": str(self.id),
            "properties": props,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": False,
        }
        if new is not None:
            out["new"] = new
        return out


@dataclass
class PortalState:
    settings: PortalSettings
    catalog: Catalog = field(default_factory=Catalog.default)
    records: dict[str, dict[int, Record]] = field(default_factory=dict)
    next_id: int = 1001
    # (from type, from id, to type, to id, association type id): both directions are kept
    associations: set[tuple[str, int, str, int, int]] = field(default_factory=set)
    types: Registry = field(init=False)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by fullyQualifiedName
    events: list[dict[str, Any]] = field(default_factory=list)
    event_uuids: set[tuple[str, str]] = field(default_factory=set)
    legacy_events: list[dict[str, Any]] = field(default_factory=list)
    lists: PortalLists = field(default_factory=PortalLists)  # lists and their members
    # email -> subscription type id -> its status (communication preferences)
    subscriptions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # emails of contacts deleted under GDPR: HubSpot refuses to create them again
    forgotten: set[str] = field(default_factory=set)
    duplicates_dropped: int = 0
    # unique property values -> record id, per (object type, property): lookups by email are O(1)
    index: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.types = Registry.standard(self.settings.hub_id)
        for spec in self.settings.custom_objects:
            self.define_object(spec)
        for otype, spec in self.settings.custom_properties:
            prop = custom_property(spec, self.types.resolve(otype))
            self.catalog.of(self.types.resolve(otype))[prop.name] = prop
        for label in self.settings.association_labels:
            self.types.add_label(label["from"], label["to"], label["label"])
        for name in self.types.types:
            self.records.setdefault(name, {})

    def define_object(self, spec: dict[str, Any]) -> ObjectType:
        """A custom object from its schema: name, labels, properties, primary display property,
        the types it associates with."""
        name = str(spec.get("name", ""))
        if not re.match(r"^[a-z][a-z0-9_]{0,49}$", name):
            raise ValueError(f"Custom object name {name!r}: lowercase letters, digits and underscores")
        props = [custom_property(p, name) for p in spec.get("properties", [])]
        primary = spec.get("primary_display_property") or (props[0].name if props else None)
        otype = self.types.add_custom(
            name,
            str(spec.get("label") or name.title()),
            primary,
            list(spec.get("associated_with") or ["contacts"]),
        )
        catalog = self.catalog.of(otype.name)
        for prop in (*record_properties(f"{name}_information"), *props):
            catalog[prop.name] = prop
        return otype

    def object_type(self, name: str) -> str:
        return self.types.resolve(name)

    def singular(self, otype: str) -> str:
        return self.types.types[otype].singular

    def json(
        self, record: Record, otype: str, wanted: list[str] | None = None, *, new: bool | None = None
    ) -> dict[str, Any]:
        default = self.types.types[otype]
        read = default.default_read
        if default.custom and default.primary_display:
            read = (*read, default.primary_display)
        return record.as_json(read, wanted, new=new)

    @property
    def hub_id(self) -> str:
        return self.settings.hub_id

    # ---- records --------------------------------------------------------------------------

    def properties_of(self, otype: str) -> dict[str, Property]:
        return self.catalog.of(otype)

    def find(self, otype: str, value: str, id_property: str | None = None) -> Record | None:
        records = self.records[otype]
        if not id_property or id_property == "hs_object_id":
            return records.get(int(value)) if str(value).isdigit() else None
        prop = self.properties_of(otype).get(id_property)
        if prop is None or not prop.unique:
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                f"Property {id_property} is not a unique identifier property for {otype}",
            )
        found = self.index.get((otype, id_property), {}).get(_norm(id_property, str(value)))
        return records.get(found) if found is not None else None

    def _reindex(self, otype: str, record: Record, old: dict[str, str]) -> None:
        for name, prop in self.properties_of(otype).items():
            if not prop.unique or name == "hs_object_id":
                continue
            index = self.index.setdefault((otype, name), {})
            before, after = old.get(name), record.properties.get(name)
            if before is not None and before != after:
                index.pop(_norm(name, before), None)
            if after is not None:
                index[_norm(name, after)] = record.id

    def remove(self, otype: str, record: Record) -> None:
        del self.records[otype][record.id]
        for (t, name), index in self.index.items():
            if t == otype and name in record.properties:
                index.pop(_norm(name, record.properties[name]), None)

    def check_unique(self, otype: str, values: dict[str, str], exclude: int | None = None) -> None:
        for name, value in values.items():
            prop = self.properties_of(otype).get(name)
            if prop is None or not prop.unique or value == "":
                continue
            other = self.find(otype, value, name)
            if other is not None and other.id != exclude:
                if otype == "contacts" and name == "email":
                    raise errors.error(409, "CONFLICT", f"Contact already exists. Existing ID: {other.id}")
                raise errors.error(
                    409,
                    "CONFLICT",
                    f"A {self.singular(otype)} with {name} {value} already exists. Existing ID: {other.id}",
                )

    def create(self, otype: str, values: dict[str, str], now_ms: int) -> Record:
        if otype == "contacts" and values.get("email", "").strip().lower() in self.forgotten:
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                f"{values['email']} was permanently deleted under GDPR: it cannot make a contact again",
                subCategory="CrmObjectsApi.GDPR_BLOCKLISTED_EMAIL",
            )
        self.check_unique(otype, values)
        record = Record(self.next_id, {}, now_ms, now_ms)
        self.next_id += 1
        self._write(otype, record, values, now_ms, creating=True)
        self.records[otype][record.id] = record
        return record

    def update(self, otype: str, record: Record, values: dict[str, str], now_ms: int) -> Record:
        self.check_unique(otype, values, exclude=record.id)
        self._write(otype, record, values, now_ms, creating=False)
        return record

    def _write(
        self, otype: str, record: Record, values: dict[str, str], now_ms: int, *, creating: bool
    ) -> None:
        old = dict(record.properties)
        for name, value in values.items():
            if name == "email":
                value = value.strip()
                before = record.properties.get("email")
                if before and value and before.lower() != value.lower():  # HubSpot keeps the old one
                    kept = [e for e in record.properties.get("hs_additional_emails", "").split(";") if e]
                    record.properties["hs_additional_emails"] = ";".join([*kept, before])
            if name == "lifecyclestage" and value and not self._lifecycle_forward(record, value):
                continue  # HubSpot does not move a lifecycle stage backwards: clear it first
            if value == "":
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        record.updated_ms = now_ms
        record.properties["hs_object_id"] = str(record.id)
        if creating:
            record.properties.setdefault("createdate", str(now_ms))
            record.created_ms = now_ms
        record.properties[self.types.types[otype].modified_property] = str(now_ms)
        self._reindex(otype, record, old)

    @staticmethod
    def _lifecycle_forward(record: Record, value: str) -> bool:
        return not is_backwards(record.properties.get("lifecyclestage"), value)

    def contact_for_email(self, email: str, now_ms: int) -> Record:
        """The contact with this email, created if there is none (events and legacy calls do)."""
        return self.find("contacts", email, "email") or self.create("contacts", {"email": email}, now_ms)

    # ---- associations ---------------------------------------------------------------------

    def associate(
        self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int | None = None
    ) -> int:
        """Associate two records with a type (the unlabeled default when none is given); a
        labelled association brings the unlabeled one too, and both directions are kept."""
        for otype, oid in ((from_type, from_id), (to_type, to_id)):
            if oid not in self.records[otype]:
                raise errors.not_found(f"No {self.singular(otype)} with ID {oid} exists")
        default = self.types.default_association(from_type, to_type)
        chosen = default if type_id is None else self.types.association_type(from_type, to_type, type_id)[0]
        for t in {default, chosen}:
            self.associations.add((from_type, from_id, to_type, to_id, t))
            self.associations.add(
                (to_type, to_id, from_type, from_id, self.types.inverse(from_type, to_type, t))
            )
        return chosen

    def associated(self, from_type: str, from_id: int, to_type: str) -> dict[int, list[int]]:
        """The records of `to_type` associated with this one, each with its association type ids."""
        found: dict[int, list[int]] = {}
        for f, f_id, t, t_id, type_id in self.associations:
            if f == from_type and f_id == from_id and t == to_type:
                found.setdefault(t_id, []).append(type_id)
        return {k: sorted(v) for k, v in sorted(found.items())}

    # ---- custom events --------------------------------------------------------------------

    def define_event(self, body: dict[str, Any], now_ms: int) -> dict[str, Any]:
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            raise errors.invalid_input("label is required", label=["This property is required"])
        name = body.get("name") or re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        if not isinstance(name, str) or not re.match(r"^[a-z0-9_]{1,100}$", name):
            raise errors.invalid_input(
                f"Invalid event name {name!r}: use lowercase letters, digits, underscores"
            )
        fqn = f"pe{self.hub_id}_{name}"
        if fqn in self.definitions:
            raise errors.error(409, "CONFLICT", f"An event with name {name} already exists")
        props = [self._event_property(p) for p in body.get("propertyDefinitions") or []]
        definition = {
            "id": str(len(self.definitions) + 1),
            "name": name,
            "fullyQualifiedName": fqn,
            "labels": {"singular": label, "plural": None},
            "description": body.get("description", ""),
            "primaryObject": body.get("primaryObject", "CONTACT"),
            "primaryObjectId": "0-1",
            "objectTypeId": f"6-{len(self.definitions) + 1000}",
            "trackingType": "MANUAL",
            "archived": False,
            "createdAt": iso_ms(now_ms),
            "properties": [
                {"name": n, "label": n, "type": "string", "hubspotDefined": True}
                for n in DEFAULT_EVENT_PROPERTIES
            ]
            + props,
            "associations": [],
        }
        self.definitions[fqn] = definition
        return definition

    @staticmethod
    def _event_property(spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict) or not EVENT_PROPERTY_NAME.match(str(spec.get("name", ""))):
            raise errors.invalid_input(
                "Event property names start with a letter and use only lowercase letters, digits and "
                "underscores (at most 50)"
            )
        ptype = spec.get("type", "string")
        if ptype not in ("string", "number", "enumeration", "datetime"):
            raise errors.invalid_input(f"Invalid event property type {ptype!r}")
        return {
            "name": spec["name"],
            "label": spec.get("label", spec["name"]),
            "type": ptype,
            "options": spec.get("options", []),
            "hubspotDefined": False,
        }

    def add_event_property(self, fqn: str, spec: Any) -> dict[str, Any]:
        definition = self.definition(fqn)
        prop = self._event_property(spec)
        if any(p["name"] == prop["name"] for p in definition["properties"]):
            raise errors.error(409, "CONFLICT", f"Property {prop['name']} already exists on {fqn}")
        definition["properties"].append(prop)
        return prop

    def definition(self, fqn: str) -> dict[str, Any]:
        definition = self.definitions.get(fqn) or self.definitions.get(f"pe{self.hub_id}_{fqn}")
        if definition is None:
            raise errors.not_found(f"Event definition {fqn} not found")
        return definition

    def check_event(self, body: Any) -> dict[str, Any]:
        """Validate one event occurrence; returns what will be recorded (or raises a 400)."""
        if not isinstance(body, dict):
            raise errors.invalid_input("Invalid input JSON: an event occurrence is an object")
        name = body.get("eventName")
        if not isinstance(name, str) or not name:
            raise errors.invalid_input("eventName is required", eventName=["This property is required"])
        definition = self.definitions.get(name)
        if definition is None:
            raise errors.invalid_input(
                f"Event {name} does not exist in portal {self.hub_id}",
                eventName=[f"No event definition named {name}"],
            )
        if not any(isinstance(body.get(k), str) and body.get(k) for k in ("email", "utk", "objectId")):
            raise errors.invalid_input(
                "One of email, utk or objectId is required to link the occurrence",
                email=["This property is required"],
            )
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise errors.invalid_input("properties must be an object")
        if len(props) > MAX_EVENT_PROPERTIES:
            raise errors.invalid_input(
                f"An occurrence can have at most {MAX_EVENT_PROPERTIES} properties; got {len(props)}"
            )
        known = {p["name"]: p for p in definition["properties"]}
        for key, value in props.items():
            if key not in known:
                raise errors.invalid_input(
                    f"Property {key} does not exist on event {name}", **{key: ["Property does not exist"]}
                )
            if not isinstance(value, str | int | float | bool) or isinstance(value, bool):
                raise errors.invalid_input(
                    f"Property {key}: values are strings or numbers", **{key: ["Invalid value"]}
                )
            if len(str(value)) > MAX_EVENT_VALUE_CHARS:
                raise errors.invalid_input(
                    f"Property {key} is longer than {MAX_EVENT_VALUE_CHARS} characters",
                    **{key: ["Value too long"]},
                )
        occurred = body.get("occurredAt")
        if occurred is not None and not _parse_occurred(occurred):
            raise errors.invalid_input(
                f"occurredAt {occurred!r} is not an ISO 8601 date-time or epoch millis"
            )
        return body

    def record_event(self, body: dict[str, Any], now_ms: int, uuid_default: str) -> bool:
        """Record a checked occurrence; False when its uuid was already received (dropped)."""
        name = body["eventName"]
        uuid = str(body.get("uuid") or uuid_default)
        if (name, uuid) in self.event_uuids:
            self.duplicates_dropped += 1
            return False
        self.event_uuids.add((name, uuid))
        if body.get("email"):
            contact = self.contact_for_email(body["email"], now_ms)
            object_id = contact.id
        elif str(body.get("objectId", "")).isdigit():
            object_id = int(body["objectId"])
        else:
            object_id = 0  # a visitor known only by utk
        occurred = _parse_occurred(body.get("occurredAt")) or now_ms
        self.events.append(
            {
                "objectType": "CONTACT",
                "objectId": str(object_id),
                "eventType": name,
                "occurredAt": iso_ms(occurred),
                "id": uuid,
                "properties": {k: str(v) for k, v in (body.get("properties") or {}).items()},
            }
        )
        return True

    # ---- persistence ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "next_id": self.next_id,
            "records": {
                t: [[r.id, r.properties, r.created_ms, r.updated_ms] for r in recs.values()]
                for t, recs in self.records.items()
            },
            "custom_properties": {
                t: [p.as_json() for p in props.values() if p.custom]
                for t, props in self.catalog.by_type.items()
            },
            "associations": sorted(self.associations),
            "definitions": self.definitions,
            "events": self.events,
            "legacy_events": self.legacy_events,
            "lists": self.lists.snapshot(),
            "subscriptions": self.subscriptions,
            "forgotten": sorted(self.forgotten),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.next_id = data["next_id"]
        self.records = {t: {r[0]: Record(*r) for r in recs} for t, recs in data["records"].items()}
        for name in self.types.types:
            self.records.setdefault(name, {})
        self.index = {}
        for otype, props in data.get("custom_properties", {}).items():
            for spec in props:
                self.catalog.of(otype)[spec["name"]] = custom_property(spec, otype)
        for otype, recs in self.records.items():
            for record in recs.values():
                self._reindex(otype, record, {})
        self.associations = set()
        for a in data["associations"]:
            if len(a) == 4:  # a file from before association types were kept: the default type
                a = [*a, self.types.default_association(a[0], a[2])]
            self.associations.add((a[0], a[1], a[2], a[3], a[4]))
        self.definitions = data["definitions"]
        self.events = data["events"]
        self.event_uuids = {(e["eventType"], e["id"]) for e in self.events}
        self.legacy_events = data.get("legacy_events", [])
        self.lists = PortalLists()
        self.lists.restore(data.get("lists", {}))
        self.subscriptions = data.get("subscriptions", {})
        self.forgotten = set(data.get("forgotten", []))


def _norm(name: str, value: str) -> str:
    """Emails are unique whatever their case; other unique values as they are."""
    return value.strip().lower() if name == "email" else value


def _parse_occurred(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    return None
