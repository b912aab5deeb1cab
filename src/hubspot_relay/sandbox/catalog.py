"""HubSpot properties: the default catalog of a portal, and how HubSpot validates a value.

Pure data and functions. Each property has HubSpot's real type (`string`, `number`, `date`,
`datetime`, `enumeration`, `bool`) and field type; `validate_value` returns HubSpot's
validation result for a value (the `{"isValid": false, "error": ..., "message": ...}` objects
that HubSpot embeds in its 400 messages) or None when the value is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..hubspot.lifecycle import LIFECYCLE_STAGES

TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = {
    "string": ("text", "textarea", "phonenumber", "html", "file"),
    "number": ("number", "calculation_equation"),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "bool": ("booleancheckbox",),
}
_EPOCH = "1970-01-01T00:00:00Z"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Option:
    label: str
    value: str
    display_order: int = 0
    hidden: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "displayOrder": self.display_order,
            "hidden": self.hidden,
            "description": "",
        }


@dataclass(frozen=True)
class Property:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str = "contactinformation"
    options: tuple[Option, ...] = ()
    read_only_value: bool = False
    unique: bool = False
    custom: bool = False
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        """The v3 property object, as `GET /crm/v3/properties/{objectType}` lists it."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [o.as_json() for o in self.options],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": self.unique,
            "hidden": False,
            "hubspotDefined": not self.custom,
            "modificationMetadata": {
                "archivable": self.custom,
                "readOnlyDefinition": not self.custom,
                "readOnlyValue": self.read_only_value,
            },
            "formField": not self.read_only_value,
            "createdAt": _EPOCH,
            "updatedAt": _EPOCH,
            "archived": False,
        }

    def as_legacy_json(self) -> dict[str, Any]:
        """The v1 property object, as `GET /properties/v1/contacts/properties` lists it."""
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "groupName": self.group_name,
            "type": self.type,
            "fieldType": self.field_type,
            "options": [
                {"label": o.label, "value": o.value, "displayOrder": o.display_order, "hidden": o.hidden}
                for o in self.options
            ],
            "readOnlyValue": self.read_only_value,
            "readOnlyDefinition": not self.custom,
            "hidden": False,
            "mutableDefinitionNotDeletable": not self.custom,
            "calculated": False,
            "externalOptions": False,
            "hubspotDefined": not self.custom,
            "formField": not self.read_only_value,
            "deleted": False,
        }


def _opts(*pairs: str) -> tuple[Option, ...]:
    return tuple(
        Option(label=p.replace("_", " ").title(), value=p, display_order=i) for i, p in enumerate(pairs)
    )


BOOL_OPTIONS = (Option("True", "true", 0), Option("False", "false", 1))


def _s(name: str, label: str, group: str = "contactinformation", field_type: str = "text") -> Property:
    return Property(name, label, "string", field_type, group)


DEFAULT_CONTACT_PROPERTIES: tuple[Property, ...] = (
    Property("email", "Email", "string", "text", unique=True),
    _s("firstname", "First Name"),
    _s("lastname", "Last Name"),
    _s("salutation", "Salutation"),
    _s("company", "Company Name"),
    _s("phone", "Phone Number", field_type="phonenumber"),
    _s("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
    _s("fax", "Fax Number"),
    _s("website", "Website URL"),
    _s("jobtitle", "Job Title"),
    _s("address", "Street Address"),
    _s("city", "City"),
    _s("state", "State/Region"),
    _s("zip", "Postal Code"),
    _s("country", "Country/Region"),
    _s("industry", "Industry"),
    _s("annualrevenue", "Annual Revenue"),
    _s("twitterhandle", "Twitter Username"),
    _s("message", "Message", field_type="textarea"),
    _s("date_of_birth", "Date of birth"),
    Property(
        "numemployees",
        "Number of Employees",
        "enumeration",
        "select",
        options=_opts("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+"),
    ),
    Property("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=_opts(*LIFECYCLE_STAGES)),
    Property(
        "hs_lead_status",
        "Lead Status",
        "enumeration",
        "radio",
        options=_opts(
            "NEW",
            "OPEN",
            "IN_PROGRESS",
            "OPEN_DEAL",
            "UNQUALIFIED",
            "ATTEMPTED_TO_CONTACT",
            "CONNECTED",
            "BAD_TIMING",
        ),
    ),
    Property(
        "hs_language",
        "Preferred language",
        "enumeration",
        "select",
        options=_opts("en", "de", "es", "fr", "it", "ja", "nl", "pt-br"),
    ),
    Property("createdate", "Create Date", "datetime", "date", group_name="contact_activity"),
    Property("closedate", "Close Date", "datetime", "date", group_name="sales_properties"),
    Property("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only_value=True),
    Property("hs_object_id", "Record ID", "number", "number", read_only_value=True, unique=True),
    # the emails a contact had before (HubSpot keeps them when the email changes), ';'-separated
    Property("hs_additional_emails", "Additional email addresses", "string", "text", read_only_value=True),
    Property(
        "hs_email_optout",
        "Unsubscribed from all email",
        "bool",
        "booleancheckbox",
        options=BOOL_OPTIONS,
        read_only_value=True,
    ),
    Property(
        "hs_analytics_source",
        "Original Traffic Source",
        "enumeration",
        "select",
        group_name="analyticsinformation",
        read_only_value=True,
        options=_opts(
            "ORGANIC_SEARCH",
            "PAID_SEARCH",
            "EMAIL_MARKETING",
            "SOCIAL_MEDIA",
            "REFERRALS",
            "OTHER_CAMPAIGNS",
            "DIRECT_TRAFFIC",
            "OFFLINE",
            "PAID_SOCIAL",
        ),
    ),
    Property(
        "hs_analytics_num_page_views",
        "Number of Pageviews",
        "number",
        "number",
        group_name="analyticsinformation",
        read_only_value=True,
    ),
)

DEFAULT_COMPANY_PROPERTIES: tuple[Property, ...] = (
    _s("name", "Company name", "companyinformation"),
    _s("domain", "Company Domain Name", "companyinformation"),
    _s("website", "Website URL", "companyinformation"),
    _s("phone", "Phone Number", "companyinformation", "phonenumber"),
    _s("address", "Street Address", "companyinformation"),
    _s("city", "City", "companyinformation"),
    _s("state", "State/Region", "companyinformation"),
    _s("zip", "Postal Code", "companyinformation"),
    _s("country", "Country/Region", "companyinformation"),
    _s("industry", "Industry", "companyinformation"),
    _s("description", "Description", "companyinformation", "textarea"),
    Property("numberofemployees", "Number of Employees", "number", "number", "companyinformation"),
    Property("annualrevenue", "Annual Revenue", "number", "number", "companyinformation"),
    Property("founded_year", "Year Founded", "string", "text", "companyinformation"),
    Property(
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        "companyinformation",
        options=_opts(*LIFECYCLE_STAGES),
    ),
    Property(
        "type",
        "Type",
        "enumeration",
        "select",
        "companyinformation",
        options=_opts("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"),
    ),
    Property("createdate", "Create Date", "datetime", "date", "companyinformation"),
    Property(
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        "companyinformation",
        read_only_value=True,
    ),
    Property(
        "hs_object_id",
        "Record ID",
        "number",
        "number",
        "companyinformation",
        read_only_value=True,
        unique=True,
    ),
)


def record_properties(group: str) -> tuple[Property, ...]:
    """What every record of an object type has: its id, creation and last change."""
    return (
        Property("createdate", "Create Date", "datetime", "date", group),
        Property(
            "hs_lastmodifieddate", "Last Modified Date", "datetime", "date", group, read_only_value=True
        ),
        Property("hs_object_id", "Record ID", "number", "number", group, read_only_value=True, unique=True),
    )


# HubSpot's default sales pipeline stages (the `default` pipeline) and ticket stages.
DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
DEFAULT_DEAL_PROPERTIES: tuple[Property, ...] = (
    _s("dealname", "Deal Name", "dealinformation"),
    Property("amount", "Amount", "number", "number", "dealinformation"),
    Property("closedate", "Close Date", "datetime", "date", "dealinformation"),
    Property(
        "dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", options=_opts(*DEAL_STAGES)
    ),
    Property("pipeline", "Pipeline", "enumeration", "select", "dealinformation", options=_opts("default")),
    Property(
        "dealtype",
        "Deal Type",
        "enumeration",
        "select",
        "dealinformation",
        options=_opts("newbusiness", "existingbusiness"),
    ),
    _s("description", "Deal Description", "dealinformation", "textarea"),
    *record_properties("dealinformation"),
)
DEFAULT_TICKET_PROPERTIES: tuple[Property, ...] = (
    _s("subject", "Ticket name", "ticketinformation"),
    _s("content", "Ticket description", "ticketinformation", "textarea"),
    Property("hs_pipeline", "Pipeline", "enumeration", "select", "ticketinformation", options=_opts("0")),
    Property(
        "hs_pipeline_stage",
        "Ticket status",
        "enumeration",
        "select",
        "ticketinformation",
        options=_opts("1", "2", "3", "4"),
    ),
    Property(
        "hs_ticket_priority",
        "Priority",
        "enumeration",
        "select",
        "ticketinformation",
        options=_opts("LOW", "MEDIUM", "HIGH", "URGENT"),
    ),
    *record_properties("ticketinformation"),
)
DEFAULT_PRODUCT_PROPERTIES: tuple[Property, ...] = (
    _s("name", "Name", "productinformation"),
    Property("price", "Unit price", "number", "number", "productinformation"),
    _s("hs_sku", "SKU", "productinformation"),
    _s("description", "Description", "productinformation", "textarea"),
    *record_properties("productinformation"),
)
DEFAULT_LINE_ITEM_PROPERTIES: tuple[Property, ...] = (
    _s("name", "Name", "lineiteminformation"),
    Property("quantity", "Quantity", "number", "number", "lineiteminformation"),
    Property("price", "Unit price", "number", "number", "lineiteminformation"),
    Property("amount", "Net price", "number", "number", "lineiteminformation"),
    _s("hs_sku", "SKU", "lineiteminformation"),
    _s("hs_product_id", "Product ID", "lineiteminformation"),
    *record_properties("lineiteminformation"),
)


def custom_property(spec: dict[str, Any], object_type: str) -> Property:
    """A property from a create request or a sandbox config entry (`name`, `type`, ...)."""
    name = str(spec.get("name", ""))
    ptype = str(spec.get("type", "string"))
    if not re.match(r"^[a-z][a-z0-9_]{0,99}$", name):
        raise ValueError(f"Property name {name!r} is invalid: use lowercase letters, digits and underscores")
    if ptype not in TYPES:
        raise ValueError(f"Property type {ptype!r} is invalid; one of {', '.join(TYPES)}")
    field_type = str(spec.get("fieldType") or spec.get("field_type") or FIELD_TYPES[ptype][0])
    raw_options = spec.get("options") or []
    options = tuple(
        Option(str(o.get("label", o.get("value"))), str(o["value"]), int(o.get("displayOrder", i)))
        if isinstance(o, dict)
        else Option(str(o), str(o), i)
        for i, o in enumerate(raw_options)
    )
    if ptype == "bool" and not options:
        options = BOOL_OPTIONS
    if ptype == "enumeration" and not options:
        raise ValueError(f"Property {name!r}: an enumeration needs options")
    group = (
        spec.get("groupName")
        or spec.get("group_name")
        or ("contactinformation" if object_type == "contacts" else "companyinformation")
    )
    return Property(
        name=name,
        label=str(spec.get("label") or name),
        type=ptype,
        field_type=field_type,
        group_name=str(group),
        options=options,
        unique=bool(spec.get("hasUniqueValue", False)),
        custom=True,
        description=str(spec.get("description", "")),
    )


# ---- value validation ---------------------------------------------------------------------


def result(name: str, error: str, message: str) -> dict[str, Any]:
    """One of HubSpot's property validation results."""
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }


def _epoch_ms(value: str) -> int | None:
    text = value.strip()
    if re.fullmatch(r"-?\d{1,16}", text):
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def normalize(prop: Property, value: str) -> str:
    """The value as HubSpot stores it (dates and datetimes as epoch milliseconds)."""
    if prop.type in ("date", "datetime"):
        ms = _epoch_ms(value)
        if ms is not None:
            return str(ms)
    if prop.type == "bool":
        return value.strip().lower()
    return value


def validate_value(prop: Property, value: str) -> dict[str, Any] | None:
    """HubSpot's validation of one value for `prop`; None when it is accepted. Empty clears."""
    if value == "":
        return None
    name = prop.name
    if prop.name == "email" and not _EMAIL.match(value.strip()):
        return result(name, "INVALID_EMAIL", f"Email address {value} is invalid")
    if prop.type == "number" and not _NUMBER.match(value.strip()):
        return result(name, "INVALID_LONG", f"{value} was not a valid long.")
    if prop.type in ("date", "datetime"):
        ms = _epoch_ms(value)
        if ms is None:
            error = "INVALID_DATE" if prop.type == "date" else "INVALID_DATETIME"
            return result(
                name, error, f"{value} was not a valid {'date' if prop.type == 'date' else 'datetime'}."
            )
        if prop.type == "date" and ms % 86_400_000:
            rem = ms % 86_400_000
            h, m, s, milli = rem // 3_600_000, rem // 60_000 % 60, rem // 1000 % 60, rem % 1000
            return result(name, "INVALID_DATE", f"{ms} is at {h}:{m}:{s}.{milli} UTC, not midnight!")
    if prop.type == "bool" and value.strip().lower() not in ("true", "false"):
        return result(name, "INVALID_OPTION", f"{value} was not one of the allowed options: [true, false]")
    if prop.type == "enumeration":
        allowed = {o.value for o in prop.options}
        chosen = value.split(";") if prop.field_type == "checkbox" else [value]
        bad = [v for v in chosen if v not in allowed]
        if bad:
            listed = ", ".join(sorted(allowed))
            return result(name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{listed}]")
    return None


def validate_properties(
    catalog: dict[str, Property], values: dict[str, Any]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(normalized values, validation failures) for a record's property map."""
    clean: dict[str, str] = {}
    failures: list[dict[str, Any]] = []
    for name, value in values.items():
        prop = catalog.get(name)
        if prop is None:
            failures.append(result(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            continue
        if prop.read_only_value:
            failures.append(
                result(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
            )
            continue
        text = "" if value is None else str(value)
        failure = validate_value(prop, text)
        if failure:
            failures.append(failure)
        else:
            clean[name] = normalize(prop, text)
    return clean, failures


@dataclass
class Catalog:
    """A portal's properties per object type."""

    by_type: dict[str, dict[str, Property]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Catalog:
        defaults = {
            "contacts": DEFAULT_CONTACT_PROPERTIES,
            "companies": DEFAULT_COMPANY_PROPERTIES,
            "deals": DEFAULT_DEAL_PROPERTIES,
            "tickets": DEFAULT_TICKET_PROPERTIES,
            "products": DEFAULT_PRODUCT_PROPERTIES,
            "line_items": DEFAULT_LINE_ITEM_PROPERTIES,
        }
        return cls({otype: {p.name: p for p in props} for otype, props in defaults.items()})

    def of(self, object_type: str) -> dict[str, Property]:
        return self.by_type.setdefault(object_type, {})
