"""Object schemas: the portal's custom object types, as `GET .../schemas` lists them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .http import SCHEMA_PREFIXES, json_response, route
from .state import PortalState


def routes() -> list[Route]:
    return [route(path, schemas_list, ["GET"]) for path in SCHEMA_PREFIXES]


async def schemas_list(request: Request, portal: PortalState) -> Response:
    """The portal's custom object schemas (`GET /crm-object-schemas/.../schemas`)."""
    results = []
    for otype in portal.types.types.values():
        if not otype.custom:
            continue
        associations = [
            {
                "fromObjectTypeId": otype.type_id,
                "toObjectTypeId": portal.types.types[t].type_id,
                "id": str(types[0][0]),
                "name": f"{otype.singular}_to_{portal.singular(t)}",
            }
            for (f, t), types in portal.types.associations.items()
            if f == otype.name
        ]
        results.append(
            {
                "id": otype.type_id.split("-", 1)[1],
                "objectTypeId": otype.type_id,
                "fullyQualifiedName": otype.name,
                "name": otype.singular,
                "labels": {"singular": otype.label, "plural": otype.label + "s"},
                "primaryDisplayProperty": otype.primary_display,
                "properties": [prop.as_json() for prop in portal.properties_of(otype.name).values()],
                "associations": associations,
                "archived": False,
            }
        )
    return json_response({"results": results})
