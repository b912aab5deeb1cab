"""Taking a listening port before anything is announced, and saying who holds it when it is taken.

`serve` binds its port first and hands the socket to uvicorn, so a port in use is one clear line
before the banner, the sandbox or delivery start (uvicorn alone binds after start-up, then dies
with `[Errno 98]`).
"""

from __future__ import annotations

import errno
import socket

import httpx


class PortInUse(Exception):
    """A port we need is held by something else; the message says what and how to move."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not yet listening), as uvicorn would bind it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def is_free(host: str, port: int) -> bool:
    try:
        bind(host, port).close()
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    return True


def holder(host: str, port: int) -> str:
    """Who answers on host:port, in words: another relay, the HubSpot sandbox, or a program."""
    where = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    base = f"http://{where}:{port}" if ":" not in where else f"http://[{where}]:{port}"
    try:
        r = httpx.get(f"{base}/_sandbox/portals", timeout=1)
        if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
            return "the HubSpot sandbox (hubspot-relay sandbox)"
        r = httpx.get(f"{base}/health", timeout=1)
        if r.status_code in (200, 503) and r.text.startswith('{"status":'):
            return "another hubspot-relay (its /health answers)"
    except (httpx.HTTPError, UnicodeDecodeError):
        pass
    return f"another program (`ss -ltnp 'sport = :{port}'` shows which)"


def take(host: str, port: int, *, option: str, variable: str) -> socket.socket:
    """Bind the relay's port, or raise PortInUse naming its holder and how to choose another."""
    try:
        return bind(host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"port {port} on {host} is in use by {holder(host, port)}: stop it, or choose another "
                f"port with {option} or {variable}"
            ) from None
        if e.errno == errno.EACCES:
            raise PortInUse(
                f"port {port} on {host} needs privileges this user lacks: choose a port above 1023 "
                f"with {option} or {variable}"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise PortInUse(f"{host} is not an address of this machine: check --host") from None
        raise
