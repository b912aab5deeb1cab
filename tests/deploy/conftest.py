"""The image, built once per test worker that needs it (the container tests share the xdist group
"heavy", so one worker builds it): `make image`, as the documentation says, with podman on these machines."""

from __future__ import annotations

import re

import pytest

from tests.conftest import require_tool
from tests.deploy.support import VERSION, dist_lock, doc_command, run


@pytest.fixture(scope="session")
def image() -> str:
    """hubspot-relay:<version>, freshly built from this tree, and the stand-in services image."""
    require_tool("podman", "building and running the image (Debian's podman)")
    require_tool("mmdebstrap", "the stand-in base image where Docker Hub cannot be reached")
    with dist_lock():
        built = run(doc_command("docs/deploying.md", "make image"), timeout=900)
        run(f"scripts/image.sh --services {VERSION}", timeout=900)
    size = re.search(r"built on (\S+): (\d+) MB", built.stdout)
    assert size, built.stdout[-2000:]
    print(f"image hubspot-relay:{VERSION} on {size.group(1)}: {size.group(2)} MB")
    return f"localhost/hubspot-relay:{VERSION}"
