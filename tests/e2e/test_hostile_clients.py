"""A real relay process against slow and greedy clients (issue 9, finding 8) and its clean stops
(finding 10). The attacker connects from 127.0.0.2, a loopback address of its own."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import RelayProcess, free_port

pytestmark = pytest.mark.e2e
WK = "wk-hostile"

CONFIG = """
[relay]
header_timeout_s = 2
body_timeout_s = 3
max_connections_per_peer = 230

[[accounts]]
name = "acme"
hub_id = 997086
access_token = "sandbox-token"
api_base = "http://127.0.0.1:{port}"

[[sources]]
name = "web"
write_key = "{wk}"
account = "acme"
"""


def attacker_socket(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def closed_by_server(s: socket.socket) -> bool:
    s.settimeout(0.5)
    try:
        return s.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_slow_and_greedy_clients_cannot_exhaust_the_relay(data_dir: Path) -> None:
    config = data_dir / "relay.toml"
    config.write_text(CONFIG.format(port=free_port(), wk=WK))
    relay = RelayProcess(data_dir, args=("--config", str(config), "--no-deliver")).start()
    held: list[socket.socket] = []
    try:
        # 150 requests that never finish their headers, 50 that never finish their body...
        for i in range(200):
            s = attacker_socket(relay.port)
            if i < 150:
                s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            else:
                s.sendall(
                    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b'Authorization: Basic d2staG9zdGlsZTo=\r\nContent-Length: 5000\r\n\r\n{"batch":['
                )
            held.append(s)
        # ... 30 that send whole headers and never a byte of body ...
        silent = []
        for _ in range(30):
            s = attacker_socket(relay.port)
            s.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Basic d2staG9zdGlsZTo=\r\nContent-Length: 5000\r\n\r\n"
            )
            silent.append(s)
        held += silent
        # ... and more connections than one peer may hold: refused at once.
        extra = [attacker_socket(relay.port) for _ in range(50)]
        assert all(closed_by_server(s) for s in extra)
        for s in extra:
            s.close()
        # Meanwhile everyone else is served.
        with httpx.Client(base_url=relay.url, timeout=2) as http:
            for _ in range(5):
                assert http.get("/health").status_code == 200
                r = http.post("/v1/t", json={"userId": "u", "event": "e"}, auth=(WK, ""))
                assert r.status_code == 200
        # The slow ones are cut off: headers after 2 s, bodies after 3 s (a 408 first).
        time.sleep(3.5)
        assert all(closed_by_server(s) for s in held[:150])
        for s in held[150:200]:
            s.settimeout(2)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data
        time.sleep(1.0)  # a body that never starts: closed a second after body_timeout
        assert all(closed_by_server(s) for s in silent)
        # and once they are gone the peer may connect again
        again = attacker_socket(relay.port)
        again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert again.recv(1024).startswith(b"HTTP/1.1 200")
        again.close()
    finally:
        for s in held:
            s.close()
        relay.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_clean_stop_is_quiet_and_prompt(data_dir: Path, sig: signal.Signals) -> None:
    relay = RelayProcess(data_dir, env={"HUBSPOT_RELAY_WRITE_KEY": WK}, new_session=True).start()
    batch = [{"type": "identify", "userId": f"u{i}@x.com", "traits": {"firstName": "U"}} for i in range(200)]
    assert httpx.post(f"{relay.url}/v1/batch", json={"batch": batch}, auth=(WK, "")).status_code == 200
    assert relay.proc is not None
    started = time.monotonic()
    os.killpg(relay.proc.pid, sig)  # as Ctrl-C in a terminal or a service manager does: the whole group
    code = relay.proc.wait(20)
    took = time.monotonic() - started
    log = relay.log()
    assert code == 0, log
    assert took < 15, f"stopping took {took:.1f} s"
    print(f"{sig.name}: stopped in {took:.2f} s")
    assert "restarting" not in log and "error" not in log.lower(), log
    # Nothing was left in flight: the messages are delivered or ready for the next start.
    import sqlite3

    with sqlite3.connect(relay.queue_path) as db:
        assert db.execute("SELECT count(*) FROM messages WHERE state = 1").fetchone() == (0,)
