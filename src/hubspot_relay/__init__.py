"""hubspot-relay: a self-hosted, Segment-compatible HubSpot destination."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version, in pyproject.toml: the installed distribution's metadata carries it.
    __version__ = version("hubspot-relay")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
