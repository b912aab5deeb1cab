"""Many addresses together against a real relay process: half-open connections from 250 loopback
addresses (127.0.1.1-127.0.1.250), each sending part of a request's headers and re-opened as soon
as the relay cuts it. With 12,000 of them the relay's 10,000-connection cap is full the whole time;
a clean client that sends a whole request promptly must still be served (/health, then ingest)
in at least 90% of one-second tries. 1,500 of them, below the cap, close nothing to make room."""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import RelayProcess

# "alone": `make test` runs these before the rest, with the machine to themselves: a clean client's
# one-second tries beside four busy test workers were served in 75-85% of them, alone in 100%.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

WK = "wk-flood"
PARTIAL = b"POST /v1/batch HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"


class Flood(threading.Thread):
    """`per_address` connections from each of `addresses`, each re-opened once the relay cuts it."""

    def __init__(self, port: int, addresses: list[str], per_address: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.addresses = addresses
        self.per_address = per_address
        self.sel = selectors.DefaultSelector()
        self.done = threading.Event()
        self.held = 0  # connections that sent their partial headers and are open
        self.opened = 0

    def _open(self, address: str) -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((address, 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return
        self.opened += 1
        self.sel.register(s, selectors.EVENT_WRITE, (address, False))

    def _close(self, s: socket.socket, address: str, held: bool) -> None:
        self.sel.unregister(s)
        s.close()
        if held:
            self.held -= 1
        if not self.done.is_set():
            self._open(address)

    def run(self) -> None:
        for address in self.addresses:
            for _ in range(self.per_address):
                self._open(address)
        while not self.done.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                address, held = key.data
                if not held:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self._close(s, address, False)
                        continue
                    try:
                        s.send(PARTIAL)
                    except OSError:
                        self._close(s, address, False)
                        continue
                    self.held += 1
                    self.sel.modify(s, selectors.EVENT_READ, (address, True))
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self._close(s, address, True)
        for key in list(self.sel.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()

    def stop(self) -> None:
        self.done.set()
        self.join(30)


def clean_try(url: str) -> bool:
    """A fresh connection, a whole request, answered within the second (then ingest likewise)."""
    started = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=1.0, headers={"Connection": "close"}) as http:
            if http.get("/health").status_code != 200:
                return False
            r = http.post("/v1/t", json={"userId": "clean", "event": "Served"}, auth=(WK, ""))
            return r.status_code == 200 and time.monotonic() - started <= 1.0
    except httpx.HTTPError:
        return False


def evicted(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(r"^hubspot_relay_connections_evicted_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("per_address", [6, 48], ids=["1,500", "12,000"])
def test_a_clean_client_is_served_while_many_addresses_flood(tmp_path: Path, per_address: int) -> None:
    addresses = [f"127.0.1.{i}" for i in range(1, 251)]
    with RelayProcess(tmp_path, env={"HUBSPOT_RELAY_WRITE_KEY": WK}, args=("--no-deliver",)) as relay:
        flood = Flood(relay.port, addresses, per_address)
        flood.start()
        try:
            target = len(addresses) * per_address
            deadline = time.monotonic() + 60
            while flood.held < min(target, 10_000) * 0.95 and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"flood: {flood.held} connections held of {target}, {flood.opened} opened")
            tries = []
            for _ in range(20):
                started = time.monotonic()
                tries.append(clean_try(relay.url))
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            served = sum(tries) / len(tries)
            print(
                f"clean client served in {served:.0%} of {len(tries)} one-second tries; opened {flood.opened}"
            )
            assert served >= 0.9, tries
            if target > 10_000:
                assert flood.opened > target, "the cap never cut anything: the test proves nothing"
                assert evicted(relay.url) > 0
            else:
                assert evicted(relay.url) == 0
        finally:
            flood.stop()
