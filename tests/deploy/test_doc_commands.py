"""The everyday commands the documentation gives, run as written against a running relay (its
port, write key and admin token from the environment, as an operator's shell would have them):
sending with curl and `hubspot-relay send`, `status`, `forget`, `import`, and the sandbox's forms."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import orjson
import pytest

from tests.deploy.support import contacts_in, doc_command, doc_commands, process, run, wait_http
from tests.helpers import RelayProcess, free_port

# "heavy": the tests that build or install run one after another on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("heavy")]
WRITE_KEY = "wk-docs"
ADMIN = "an-admin-token-for-the-docs"


def test_the_everyday_commands_of_the_docs(data_dir: Path, tmp_path: Path) -> None:
    env = {"HUBSPOT_RELAY_WRITE_KEY": WRITE_KEY, "HUBSPOT_RELAY_ADMIN_TOKEN": ADMIN}
    bin_dir = str(Path(sys.executable).parent)
    with RelayProcess(data_dir, env=env) as relay:
        shell = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")},
            **env,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HUBSPOT_RELAY_PORT": str(relay.port),
            "HUBSPOT_SANDBOX_PORT": str(relay.sandbox_port),
        }
        sandbox = f"http://127.0.0.1:{relay.sandbox_port}"

        def doc(page: str, start: str) -> str:
            command = doc_command(page, start).replace("YOUR_WRITE_KEY", WRITE_KEY)
            return run(command.replace("8088", str(relay.port)), cwd=tmp_path, env=shell).stdout

        assert orjson.loads(doc("docs/sending-events.md", "curl -u")) == {"success": True}
        doc("docs/sending-events.md", "hubspot-relay send identify")
        doc("docs/sending-events.md", "hubspot-relay send track")
        assert contacts_in(sandbox, ["peter@initech.com"])["peter@initech.com"]["firstname"] == "Peter"

        archive = tmp_path / "segment-archive.jsonl.gz"
        lines = [
            {
                "type": "identify",
                "userId": f"imp-{i}",
                "traits": {"email": f"imported-{i}@example.com"},
                "messageId": f"imp-{i}",
                "timestamp": "2026-12-01T10:00:00Z",
            }
            for i in range(5)
        ]
        archive.write_bytes(gzip.compress(b"\n".join(orjson.dumps(m) for m in lines) + b"\n"))
        doc("docs/operating.md", "hubspot-relay import")
        contacts_in(sandbox, [f"imported-{i}@example.com" for i in range(5)])

        status = doc("docs/sending-events.md", "hubspot-relay status")
        assert "default" in status
        doc("docs/hubspot.md", "hubspot-relay forget --user-id u-123 --email")
        doc("docs/hubspot.md", "hubspot-relay forget --user-id u-123 --type UNSUPPRESS")

    # The sandbox alone, in each form the docs give (on a free port).
    portals = tmp_path / "portals.toml"
    portals.write_text('[[portals]]\nhub_id = 4242\naccess_tokens = ["t-4242"]\n')
    for command in [c for c in doc_commands("docs/operating.md") if c.startswith("hubspot-relay sandbox")]:
        port = free_port()
        argv = [*command.split("#")[0].split(), "--port", str(port)]
        argv[0] = f"{bin_dir}/hubspot-relay"
        with process(argv, log=tmp_path / f"sandbox-{port}.log", cwd=tmp_path):
            wait_http(f"http://127.0.0.1:{port}/_sandbox/portals", what=f"`{command}`", timeout=30)
