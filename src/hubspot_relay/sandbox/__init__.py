"""A faithful local HubSpot: the API endpoints the relay uses, with HubSpot's validation,
error bodies, rate limits and faults on demand. `hubspot-relay sandbox` runs it."""

from .app import Sandbox, create_sandbox_app
from .settings import PortalSettings, load_portals

__all__ = ["PortalSettings", "Sandbox", "create_sandbox_app", "load_portals"]
