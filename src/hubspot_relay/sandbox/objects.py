"""The object types a sandbox portal has (HubSpot's standard ones and the portal's custom objects)
and the association types between them, with their labels.

HubSpot names an object type three ways in a path: its name (`deals`, or a singular `deal`), its
object type id (`0-3`; a custom object's `2-<n>`) or, for a custom object, its fully qualified
name (`p<hubId>_<name>`). Association types are directional and numbered; the relay reads them
(`GET .../associations/{from}/{to}/labels`) rather than hard-coding any, so the numbers here only
need to be consistent; the standard ones are those HubSpot documents for the unlabeled and
Primary types (contact/company 279/280 and 1/2, deal/contact 3/4, deal/company 341/342 and 5/6,
line item/deal 20/19, contact/ticket 15/16).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import errors


@dataclass(frozen=True)
class ObjectType:
    name: str  # what records are kept under: "deals", "p997086_pets"
    type_id: str  # "0-3", "2-1001"
    singular: str
    label: str
    modified_property: str = "hs_lastmodifieddate"
    default_read: tuple[str, ...] = ("createdate", "hs_lastmodifieddate", "hs_object_id")
    custom: bool = False
    primary_display: str | None = None
    aliases: tuple[str, ...] = ()


STANDARD_TYPES: tuple[ObjectType, ...] = (
    ObjectType(
        "contacts",
        "0-1",
        "contact",
        "Contact",
        "lastmodifieddate",
        ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        primary_display="email",
    ),
    ObjectType(
        "companies",
        "0-2",
        "company",
        "Company",
        default_read=("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        primary_display="name",
    ),
    ObjectType(
        "deals",
        "0-3",
        "deal",
        "Deal",
        default_read=(
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ),
        primary_display="dealname",
    ),
    ObjectType(
        "tickets",
        "0-5",
        "ticket",
        "Ticket",
        default_read=(
            "content",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_priority",
            "subject",
        ),
        primary_display="subject",
    ),
    ObjectType(
        "products",
        "0-7",
        "product",
        "Product",
        default_read=("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
        primary_display="name",
    ),
    ObjectType(
        "line_items",
        "0-8",
        "line item",
        "Line item",
        default_read=(
            "amount",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_product_id",
            "name",
            "price",
            "quantity",
        ),
        primary_display="name",
        aliases=("line_item", "lineitem", "lineitems"),
    ),
)

# (from, to) -> [(type id, label)]: the first is the unlabeled type (the default association).
STANDARD_ASSOCIATIONS: dict[tuple[str, str], list[tuple[int, str | None]]] = {
    ("contacts", "companies"): [(279, None), (1, "Primary")],
    ("companies", "contacts"): [(280, None), (2, "Primary")],
    ("deals", "contacts"): [(3, None)],
    ("contacts", "deals"): [(4, None)],
    ("deals", "companies"): [(341, None), (5, "Primary")],
    ("companies", "deals"): [(342, None), (6, "Primary")],
    ("line_items", "deals"): [(20, None)],
    ("deals", "line_items"): [(19, None)],
    ("contacts", "tickets"): [(15, None)],
    ("tickets", "contacts"): [(16, None)],
    ("tickets", "companies"): [(339, None), (26, "Primary")],
    ("companies", "tickets"): [(340, None), (25, "Primary")],
    ("deals", "tickets"): [(27, None)],
    ("tickets", "deals"): [(28, None)],
}


@dataclass
class Registry:
    """A portal's object types and association types."""

    hub_id: str
    types: dict[str, ObjectType] = field(default_factory=dict)  # by name
    aliases: dict[str, str] = field(default_factory=dict)  # any spelling -> name
    associations: dict[tuple[str, str], list[tuple[int, str | None, str]]] = field(default_factory=dict)
    _next_type_id: int = 1000

    @classmethod
    def standard(cls, hub_id: str) -> Registry:
        registry = cls(hub_id)
        for otype in STANDARD_TYPES:
            registry.add(otype)
        for pair, types in STANDARD_ASSOCIATIONS.items():
            registry.associations[pair] = [(i, label, "HUBSPOT_DEFINED") for i, label in types]
        return registry

    def add(self, otype: ObjectType) -> None:
        self.types[otype.name] = otype
        spellings = {otype.name, otype.type_id, otype.singular.replace(" ", "_"), *otype.aliases}
        for spelling in spellings:
            self.aliases[spelling.lower()] = otype.name

    def add_custom(
        self, name: str, label: str, primary_display: str | None, associated_with: list[str]
    ) -> ObjectType:
        """A custom object (as a schema defines it): `p<hubId>_<name>`, type id `2-<n>`, with an
        unlabeled association to and from each type it is associated with."""
        self._next_type_id += 1
        otype = ObjectType(
            f"p{self.hub_id}_{name}",
            f"2-{self._next_type_id}",
            name,
            label,
            custom=True,
            primary_display=primary_display,
            aliases=(name,),
        )
        self.add(otype)
        for other in associated_with:
            other_name = self.resolve(other)
            self._new_association(otype.name, other_name, None, "HUBSPOT_DEFINED")
            self._new_association(other_name, otype.name, None, "HUBSPOT_DEFINED")
        return otype

    def add_label(self, from_type: str, to_type: str, label: str) -> int:
        """A portal's own association label (USER_DEFINED), in both directions."""
        f, t = self.resolve(from_type), self.resolve(to_type)
        if (f, t) not in self.associations:
            raise ValueError(f"no association between {f} and {t} to label")
        self._new_association(t, f, label, "USER_DEFINED")
        return self._new_association(f, t, label, "USER_DEFINED")

    def _new_association(self, f: str, t: str, label: str | None, category: str) -> int:
        self._next_type_id += 1
        self.associations.setdefault((f, t), []).append((self._next_type_id, label, category))
        return self._next_type_id

    def resolve(self, name: str) -> str:
        found = self.aliases.get(name.lower())
        if found is None:
            raise errors.error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {name}")
        return found

    def get(self, name: str) -> ObjectType:
        return self.types[self.resolve(name)]

    def default_association(self, from_type: str, to_type: str) -> int:
        types = self.associations.get((from_type, to_type))
        if not types:
            raise errors.error(
                400,
                "VALIDATION_ERROR",
                f"No association type between {from_type} and {to_type}: define one first",
            )
        return types[0][0]

    def association_type(self, from_type: str, to_type: str, type_id: int) -> tuple[int, str | None, str]:
        for found in self.associations.get((from_type, to_type), []):
            if found[0] == type_id:
                return found
        raise errors.error(
            400,
            "VALIDATION_ERROR",
            f"{type_id} is not a valid association type id from {from_type} to {to_type}",
        )

    def inverse(self, from_type: str, to_type: str, type_id: int) -> int:
        """The type the other way: the same label (or unlabeled) from `to_type` to `from_type`."""
        _, label, _ = self.association_type(from_type, to_type, type_id)
        for found_id, found_label, _ in self.associations.get((to_type, from_type), []):
            if found_label == label:
                return found_id
        return self.default_association(to_type, from_type)

    def labels(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        """`GET .../associations/{from}/{to}/labels`: every type, the unlabeled one with a null label."""
        return [
            {"category": category, "typeId": type_id, "label": label}
            for type_id, label, category in self.associations.get((from_type, to_type), [])
        ]
