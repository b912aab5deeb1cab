"""The documentation holds to the code: the configuration reference is the schema's, every
environment variable the source reads is documented, the README is a front page, the changelog
names this version, and every command the docs give is run by a test (or says why it cannot be)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hubspot_relay import __version__
from hubspot_relay.config_reference import ENVIRONMENT, KEYS, markdown, schema_keys
from tests.deploy.support import doc_commands
from tests.helpers import ROOT

GENERATED = "<!-- reference: generated, do not edit below -->\n"
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
# Quoted HUBSPOT_* literals in the source that are not environment variables.
NOT_ENVIRONMENT = {"HUBSPOT_DEFINED"}

# Every command the docs give, and the test that runs it (taking it from the docs), or why none can
# here. A command added to the docs fails `test_every_command_in_the_docs_is_run` until it is here.
FRESH_CLONE = "tests/deploy/test_fresh_clone.py::test_the_readme_s_commands_in_a_fresh_clone"
EVERYDAY = "tests/deploy/test_doc_commands.py::test_the_everyday_commands_of_the_docs"
RUN_BY = {
    "make run": FRESH_CLONE,
    "make test": ".ci/run (CI runs it in a fresh clone)",
    "make dist": "Makefile (`make test` runs it; tests/deploy install what it built)",
    "make image": "tests/deploy/conftest.py::image",
    "curl -s -u my-write-key:": FRESH_CLONE,
    "curl -s -H 'Authorization: Bearer sandbox-token'": FRESH_CLONE,
    "python3 -m venv /opt/hubspot-relay": "tests/deploy/test_wheel.py::installed",
    "/opt/hubspot-relay/bin/pip install": "tests/deploy/test_wheel.py::installed",
    "/opt/hubspot-relay/bin/hubspot-relay --version": "tests/deploy/test_wheel.py::installed",
    "cp deploy/compose/relay.env.example": "tests/deploy/test_compose.py::Compose",
    "mkdir -p deploy/compose/tls": "tests/deploy/test_compose.py::Compose",
    "openssl req -x509": "tests/deploy/test_compose.py::Compose",
    "podman-compose -f deploy/compose.yaml -f deploy/compose.sandbox.yaml up -d": "tests/deploy/"
    "test_compose.py::Compose",
    "nginx -t": "tests/deploy/test_nginx.py::test_nginx_accepts_the_configuration",
    "curl -u YOUR_WRITE_KEY:": EVERYDAY,
    "hubspot-relay send ": EVERYDAY,
    "hubspot-relay status": EVERYDAY,
    "hubspot-relay forget ": EVERYDAY,
    "hubspot-relay import ": EVERYDAY,
    "hubspot-relay sandbox": EVERYDAY,
}
NOT_HERE = {
    "make bench": "a benchmark: minutes of load on a quiet machine, run by hand (docs/benchmarks.md)",
    ".venv/bin/python bench/": "a benchmark or its plot, run by hand; its results are in bench/results",
    "hubspot-relay serve --config relay.toml --queue": "needs the reader's relay.toml and Redis: "
    "tests/e2e/test_scale_out.py runs relays on a test Redis",
    "HUBSPOT_HUB_ID=997086 HUBSPOT_ACCESS_TOKEN=pat-na1-": "needs a real HubSpot portal's token",
    "docker run": "no Docker daemon on these machines: the same image runs under podman in "
    "tests/deploy/test_image.py",
    "podman-compose -f deploy/compose.yaml up -d": "needs HubSpot credentials: tests/deploy/test_compose.py "
    "runs it with the sandbox override",
    "useradd --system": "changes the machine's users: the unit is verified with systemd-analyze instead",
    "install -d -m 0750 -g hubspot-relay": "writes /etc",
    "cp deploy/systemd/hubspot-relay.service": "writes /etc",
    "systemctl ": "systemd is not PID 1 on these machines: tests/deploy/test_systemd.py and test_wheel.py "
    "verify and score the unit offline",
    "systemd-analyze security hubspot-relay.service": "scored offline on the file in "
    "tests/deploy/test_systemd.py",
    "cp deploy/nginx/hubspot-relay.conf": "writes /etc: tests/deploy/test_nginx.py includes the files "
    "from a test folder",
}


def test_the_configuration_reference_covers_the_schema_exactly() -> None:
    assert sorted(KEYS) == sorted(schema_keys())


def test_the_configuration_page_is_the_generated_reference() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert GENERATED in page
    assert page.split(GENERATED, 1)[1] == markdown(), "regenerate: hubspot_relay.config_reference.markdown()"


def test_every_environment_variable_read_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "hubspot_relay").rglob("*.py"))
    read = set(re.findall(r'"(HUBSPOT_[A-Z_]+)"', source)) - NOT_ENVIRONMENT
    assert sorted(read) == sorted(ENVIRONMENT)


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    assert doc_commands("README.md")[:2] == ["make run", "make test"]
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", readme):
        assert (ROOT / link).is_file(), link


def test_the_changelog_names_this_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert "## [Unreleased]" in changelog
    assert releases[0][0] == version == __version__
    assert [v for v, _ in releases] == sorted(
        (v for v, _ in releases), key=lambda v: tuple(map(int, v.split("."))), reverse=True
    )
    for name in ["Unreleased", *(v for v, _ in releases)]:
        assert re.search(rf"^\[{re.escape(name)}\]: \S+$", changelog, re.M), f"no link for [{name}]"


@pytest.mark.parametrize("page", PAGES)
def test_every_command_in_the_docs_is_run(page: str) -> None:
    for command in doc_commands(page):
        ran = [start for start in RUN_BY if command.startswith(start)]
        cannot = [start for start in NOT_HERE if command.startswith(start)]
        assert ran or cannot, f"{page}: `{command}` is run by no test: run it in one and name it in RUN_BY"
        for start in ran:
            where, _, name = RUN_BY[start].partition("::")
            if name:
                assert re.search(rf"^\s*(def|class) {name}\b", (ROOT / where).read_text(), re.M), RUN_BY[
                    start
                ]


def test_the_docs_site_lists_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
    assert Path(ROOT / "docs" / "index.md").is_file()
