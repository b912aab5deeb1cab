"""The HubSpot side: an async client for the endpoints the relay uses, its errors, and the
per-account rate limiter."""
