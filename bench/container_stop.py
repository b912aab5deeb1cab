"""`podman stop` of the relay's container while it delivers a backlog at HubSpot's real latency:
how long the stop takes and how it ends (exit 0 is a clean stop; 137 would be podman's SIGKILL),
and whether a new container on the same volume then delivers every message.

    .venv/bin/python bench/container_stop.py --latency-ms 300 --latency-ms 1000

Needs the image (`make image`) and podman; the sandbox runs on the host. Prints one JSON line per
run and writes them to bench/results/container_stop.json."""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import free_port  # noqa: E402

RUN = "podman --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
WK = "wk-bench"


def sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout


def wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def container(image: str, volume: str, sandbox: str) -> tuple[str, str]:
    port, name = free_port(), f"bench-stop-{uuid.uuid4().hex[:6]}"
    env = {
        "HUBSPOT_RELAY_PORT": port,
        "HUBSPOT_ACCESS_TOKEN": "sandbox-token",
        "HUBSPOT_HUB_ID": "997086",
        "HUBSPOT_API_BASE": sandbox,
        "HUBSPOT_TRACK_BASE": sandbox,
        "HUBSPOT_RELAY_WRITE_KEY": WK,
    }
    flags = " ".join(f"-e {k}={v}" for k, v in env.items())
    sh(f"{RUN} -d --name {name} --network host -v {volume}:/var/lib/hubspot-relay {flags} {image}")
    url = f"http://127.0.0.1:{port}"
    wait(f"{url}/health")
    return name, url


def counts(url: str) -> dict[str, int]:
    acc = httpx.get(f"{url}/admin/api/status", timeout=10).json()["accounts"]["default"]
    return {k: acc[k] for k in ("queued", "in_flight", "retrying", "delivered", "dead")}


def one_run(image: str, latency_ms: int, messages: int) -> dict[str, object]:
    port = free_port()
    sandbox = f"http://127.0.0.1:{port}"
    log = open(f"/tmp/bench-stop-sandbox-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubspot_relay", "sandbox", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    volume = f"bench-stop-{uuid.uuid4().hex[:6]}"
    sh(f"podman volume create {volume}")
    try:
        wait(f"{sandbox}/_sandbox/portals")
        httpx.post(
            f"{sandbox}/_sandbox/faults", json={"rules": [{"match": "*", "latency_ms": latency_ms}]}
        ).raise_for_status()
        name, url = container(image, volume, sandbox)
        auth = {"Authorization": "Basic " + base64.b64encode(f"{WK}:".encode()).decode()}
        for start in range(0, messages, 100):
            batch = [
                {
                    "type": "identify",
                    "userId": f"u-{i}",
                    "messageId": f"m-{i}",
                    "traits": {"email": f"stop-{i}@example.com", "firstName": f"N{i}"},
                }
                for i in range(start, min(start + 100, messages))
            ]
            httpx.post(f"{url}/v1/batch", json={"batch": batch}, headers=auth, timeout=30).raise_for_status()
        time.sleep(2.0)  # delivery under way
        before = counts(url)
        started = time.monotonic()
        sh(f"podman stop --time 30 {name}")
        stop_s = time.monotonic() - started
        code = int(sh(f"podman inspect --format '{{{{.State.ExitCode}}}}' {name}"))
        sh(f"podman rm -f {name}")
        name2, url2 = container(image, volume, sandbox)
        started = time.monotonic()
        while True:
            after = counts(url2)
            if after["queued"] + after["in_flight"] + after["retrying"] == 0:
                break
            if time.monotonic() - started > 600:
                break
            time.sleep(0.5)
        sh(f"podman rm -f {name2}")
        return {
            "latency_ms": latency_ms,
            "messages": messages,
            "delivered_before_stop": before["delivered"],
            "stop_s": round(stop_s, 2),
            "exit_code": code,
            "delivered_in_all": after["delivered"],
            "dead": after["dead"],
            "restart_drain_s": round(time.monotonic() - started, 1),
        }
    finally:
        proc.terminate()
        proc.wait()
        sh(f"podman volume rm -f {volume}")


def main() -> None:
    parser = argparse.ArgumentParser()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    parser.add_argument("--image", default=f"localhost/hubspot-relay:{version}")
    parser.add_argument("--latency-ms", type=int, action="append")
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    results = [one_run(args.image, ms, args.messages) for ms in (args.latency_ms or [300, 1000])]
    for r in results:
        print(json.dumps(r))
    (ROOT / "bench" / "results" / "container_stop.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
