"""A faithful local HubSpot: the API endpoints the relay uses, with HubSpot's validation,
error bodies, rate limits and faults on demand. `hubspot-relay sandbox` runs it."""

from pathlib import Path

from .app import Sandbox, create_sandbox_app
from .settings import PortalSettings
from .settings import load_portals as _read
from .state import PortalState


def load_portals(path: Path) -> list[PortalSettings]:
    """The portals a TOML file declares, each one built once to check it."""
    return _read(path, check=PortalState)

__all__ = ["PortalSettings", "Sandbox", "create_sandbox_app", "load_portals"]
