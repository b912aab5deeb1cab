"""The OCI image under podman: a Segment client -> the relay in the container -> the sandbox on the
host, delivered; `podman stop` drains within its deadline (a clean exit, not a kill); the relay is
not root; a new container on the same volume delivers what the old one had queued."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from segment.analytics import Client

from tests.deploy.support import PODMAN_RUN, VERSION, contacts_in, run, wait_http
from tests.helpers import SandboxProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("heavy")]


@pytest.fixture
def sandbox() -> Iterator[str]:
    """The HubSpot sandbox on the host (the repository's own relay, not the image's)."""
    process = SandboxProcess()
    yield process.url
    process.stop()


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"hubspot-relay-test-{uuid.uuid4().hex[:8]}"
    run(f"podman volume create {name}")
    yield name
    run(f"podman volume rm -f {name}", check=False)


class Container:
    """One `podman run -d` of the image with the relay on a free port of the host's network."""

    def __init__(self, image: str, volume: str, sandbox: str, *command: str) -> None:
        self.port = free_port()
        self.name = f"hubspot-relay-test-{uuid.uuid4().hex[:8]}"
        env = {
            "HUBSPOT_RELAY_PORT": str(self.port),
            "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
            "HUBSPOT_HUB_ID": "997086",
            "HUBSPOT_API_BASE": sandbox,
            "HUBSPOT_TRACK_BASE": sandbox,
            "HUBSPOT_RELAY_WRITE_KEY": "wk-image",
        }
        flags = " ".join(f"-e {k}={v}" for k, v in env.items())
        run(
            f"{PODMAN_RUN} -d --name {self.name} --network host -v {volume}:/var/lib/hubspot-relay "
            f"{flags} {image} {' '.join(command)}"
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_http(f"{self.url}/health", what=f"the relay in {self.name}", timeout=60)
        except AssertionError as e:
            logs = run(f"podman logs {self.name}", check=False)
            raise AssertionError(
                f"{e}\n--- podman logs\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
            ) from None

    def stop(self) -> tuple[float, int, str]:
        """`podman stop` (SIGTERM, then SIGKILL after its 10 s): seconds taken, exit code, log."""
        started = time.monotonic()
        run(f"podman stop --time 10 {self.name}", timeout=60)
        took = time.monotonic() - started
        code = int(run(f"podman inspect --format '{{{{.State.ExitCode}}}}' {self.name}").stdout)
        logs = run(f"podman logs {self.name}")
        return took, code, logs.stderr + logs.stdout

    def remove(self) -> None:
        run(f"podman rm -f {self.name}", check=False)


def client(url: str) -> Client:
    return Client(write_key="wk-image", host=url, sync_mode=True, max_retries=3)


def test_the_image_delivers_drains_and_hands_its_queue_on(image: str, sandbox: str, volume: str) -> None:
    inspected = run(
        f"podman image inspect --format '{{{{.Config.User}}}} {{{{.Config.Entrypoint}}}} "
        f"{{{{.Config.Cmd}}}}' {image}"
    ).stdout.strip()
    assert inspected == "relay:relay [hubspot-relay] [serve]"

    first = Container(image, volume, sandbox)
    try:
        assert run(f"podman exec {first.name} id -u").stdout.strip() != "0"
        assert set(run(f"podman top {first.name} user").stdout.split()[1:]) == {"relay"}  # every process
        assert run(f"podman exec {first.name} hubspot-relay --version").stdout.strip() == (
            f"hubspot-relay {VERSION}"
        )
        assert run(f"podman exec {first.name} hubspot-relay health").stdout.strip() == "ready"
        segment = client(first.url)
        segment.identify("img-1", {"email": "image@example.com", "firstName": "Ivy"})
        segment.flush()
        assert contacts_in(sandbox, ["image@example.com"])["image@example.com"]["firstname"] == "Ivy"
        took, code, log = first.stop()
        assert code == 0, log[-3000:]  # SIGTERM handled: a clean exit, not podman's SIGKILL (137)
        assert took < 10, f"podman stop took {took:.1f} s"
        assert "Application shutdown complete" in log
    finally:
        first.remove()

    # Accepted and queued only (--no-deliver), then stopped: the queue is in the volume.
    queuing = Container(image, volume, sandbox, "serve", "--no-deliver")
    emails = [f"queued-{i}@example.com" for i in range(25)]
    try:
        segment = client(queuing.url)
        for i, email in enumerate(emails):
            segment.identify(f"q-{i}", {"email": email, "lastName": f"Q{i}"})
        segment.flush()
        took, code, _ = queuing.stop()
        assert code == 0 and took < 10
    finally:
        queuing.remove()

    # A new container on the same volume delivers every one of them.
    second = Container(image, volume, sandbox)
    try:
        found = contacts_in(sandbox, emails)
        assert {found[e]["lastname"] for e in emails} == {f"Q{i}" for i in range(25)}
    finally:
        second.stop()
        second.remove()
