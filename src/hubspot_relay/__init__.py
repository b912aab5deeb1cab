"""hubspot-relay: a self-hosted, Segment-compatible HubSpot destination."""

__version__ = "0.1.0"
