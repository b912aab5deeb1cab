"""The start-up check of an account's mappings against its portal: every object type, property and
association label a mapping names must be there (or is created, with `create_properties`), so
that a mistake is said before the first message, not as dead letters."""

from __future__ import annotations

from typing import Any

import structlog

from ..config import Account
from ..hubspot.client import HubSpotClient
from ..hubspot.errors import HubSpotError
from ..translate.mappings import Mapping
from .stages.objects import _SINGULAR, STANDARD_OBJECTS, _group

log = structlog.get_logger("hubspot_relay.deliver")


async def check_mappings(account: Account, client: HubSpotClient, create_properties: bool) -> list[str]:
    """What in the account's mappings the portal does not have (object types, properties,
    association labels), each naming the mapping's key and the portal; [] when all is there.
    With `create_properties`, a missing `id_property` is created (unique) and missing
    properties (text) too."""
    check = MappingCheck(account, client, create_properties)
    for i, mapping in enumerate(account.mappings):
        await check.mapping(f"accounts[{account.name}].mappings[{i}] ({mapping.name})", mapping)
    return check.problems


class MappingCheck:
    def __init__(self, account: Account, client: HubSpotClient, create_properties: bool) -> None:
        self.account = account
        self.client = client
        self.create_properties = create_properties
        self.portal = f"HubSpot portal {account.hub_id}"
        self.problems: list[str] = []
        self.schemas: list[dict[str, Any]] | None = None  # the portal's custom objects, read once
        self.paths: dict[str, str] = {}  # a mapping's object -> as HubSpot's paths take it
        self.catalogs: dict[str, dict[str, dict[str, Any]]] = {}  # path -> properties by name

    async def mapping(self, key: str, mapping: Mapping) -> None:
        path = await self.object_path(key, mapping.object)
        if path is None:
            return
        if path not in self.catalogs:
            self.catalogs[path] = {p["name"]: p for p in await self.client.properties(path)}
        if not await self.id_property(key, mapping, path):
            return
        await self.properties(key, mapping, path)
        await self.labels(key, mapping, path)

    async def object_path(self, key: str, name: str) -> str | None:
        if name in self.paths:
            return self.paths[name]
        if name in STANDARD_OBJECTS:
            self.paths[name] = name
            return name
        if self.schemas is None:
            self.schemas = await self.client.schemas()
        match = next(
            (
                x
                for x in self.schemas
                if name in (x.get("name"), x.get("fullyQualifiedName"), x.get("objectTypeId"))
            ),
            None,
        )
        if match is None:
            known = ", ".join([*STANDARD_OBJECTS, *(str(x.get("name")) for x in self.schemas)])
            self.problems.append(f"{key}.object: {name!r} is not an object type of {self.portal} ({known})")
            return None
        self.paths[name] = str(match["fullyQualifiedName"])
        return self.paths[name]

    async def id_property(self, key: str, mapping: Mapping, path: str) -> bool:
        """The mapping's unique key property (created when asked); False when the rest of this
        mapping cannot be checked."""
        catalog = self.catalogs[path]
        id_prop = catalog.get(mapping.id_property)
        if id_prop is None and self.create_properties:
            spec = {
                "name": mapping.id_property,
                "label": mapping.id_property.replace("_", " ").title(),
                "type": "string",
                "fieldType": "text",
                "groupName": _group(mapping.object),
                "hasUniqueValue": True,
            }
            try:
                catalog[mapping.id_property] = await self.client.create_property(path, spec)
                log.info(
                    "created a mapping's id property",
                    account=self.account.name,
                    object=path,
                    name=mapping.id_property,
                )
            except HubSpotError as e:
                self.problems.append(
                    f"{key}.id_property: could not create {mapping.id_property!r} on {path}: {e.describe()}"
                )
                return False
        elif id_prop is None:
            self.problems.append(
                f"{key}.id_property: {path} has no property {mapping.id_property!r} in {self.portal} "
                "(create it as a unique property, or set create_properties = true)"
            )
        elif not id_prop.get("hasUniqueValue"):
            self.problems.append(
                f"{key}.id_property: {mapping.id_property!r} is not a unique property of {path} "
                f"in {self.portal}"
            )
        return True

    async def properties(self, key: str, mapping: Mapping, path: str) -> None:
        catalog = self.catalogs[path]
        for prop in mapping.properties:
            if prop in catalog:
                continue
            if self.create_properties:
                spec = {
                    "name": prop,
                    "label": prop.replace("_", " ").title(),
                    "type": "string",
                    "fieldType": "text",
                    "groupName": _group(mapping.object),
                }
                catalog[prop] = await self.client.create_property(path, spec)
            else:
                self.problems.append(
                    f"{key}.properties.{prop}: {path} has no property {prop!r} in {self.portal}"
                )

    async def labels(self, key: str, mapping: Mapping, path: str) -> None:
        for j, association in enumerate(mapping.associate):
            if association.label is None:
                continue
            to = _SINGULAR.get(association.to)
            if to is None:
                other = next(
                    (m.object for m in self.account.mappings if m.name == association.to), association.to
                )
                to = self.paths.get(other, other)
            labels = [x.get("label") for x in await self.client.association_labels(path, to)]
            if association.label not in labels:
                named = ", ".join(repr(x) for x in labels if x) or "none"
                self.problems.append(
                    f"{key}.associate[{j}].label: no label {association.label!r} "
                    f"from {path} to {to} in {self.portal} "
                    f"(labels there: {named})"
                )
