"""The README's and the quickstart's commands, as a newcomer types them, in a fresh clone of this
repository: `make run` (from nothing: the venv, analytics.js, the bundled sandbox), the example
identify with curl, and the contact read back from the sandbox. (`make test` from a fresh clone is
what CI runs.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import doc_command, doc_commands, run, wait_http
from tests.helpers import ROOT, free_port

# "heavy": the tests that build or install run one after another on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("heavy")]


def test_the_readme_s_commands_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "hubspot-relay"
    run(f"git clone --quiet {ROOT} {clone}")
    assert doc_commands("README.md")[:2] == ["make run", "make test"]
    port, sandbox_port = free_port(), free_port()
    env = {**os.environ, "HUBSPOT_RELAY_PORT": str(port), "HUBSPOT_SANDBOX_PORT": str(sandbox_port)}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "HUBSPOT_RELAY_CONFIG", "HUBSPOT_ACCESS_TOKEN"):
        env.pop(name, None)
    log = (tmp_path / "make-run.log").open("wb")
    make_run = subprocess.Popen(
        ["bash", "-c", doc_command("docs/quickstart.md", "make run")],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=480, what="make run in a fresh clone")
        ours = lambda command: command.replace("8088", str(port)).replace("8089", str(sandbox_port))  # noqa: E731
        for page, start in (("README.md", "curl -s -u"), ("docs/quickstart.md", "curl -s -u")):
            answer = run(ours(doc_command(page, start)), cwd=clone).stdout
            assert json.loads(answer) == {"success": True}
        read = ours(doc_command("docs/quickstart.md", "curl -s -H 'Authorization"))
        for _ in range(120):
            body = run(read, cwd=clone, check=False).stdout
            if '"firstname":"Ada"' in body.replace(" ", ""):
                break
            subprocess.run(["sleep", "0.5"], check=True)
        else:
            raise AssertionError(f"the contact never reached the sandbox: {body[:500]}")
        settings = run(
            f"curl -s http://127.0.0.1:{port}/analytics.js/v1/my-write-key/analytics.min.js", cwd=clone
        )
        assert len(settings.stdout) > 50_000  # make run serves analytics.js (device mode's demo works)
    finally:
        os.killpg(make_run.pid, signal.SIGINT)
        try:
            make_run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(make_run.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "make-run.log").read_text(errors="replace")
    assert "NO HUBSPOT CREDENTIALS CONFIGURED" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
