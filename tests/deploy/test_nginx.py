"""deploy/nginx/ checked by the real nginx (`nginx -t`, Debian's), included from an `http {}` block
as the documentation says, with a certificate where the configuration expects one; and the headers
it sets, read from the file: forwarded headers overwritten, `Forwarded` removed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.deploy.support import doc_command, run
from tests.helpers import ROOT

CONF = ROOT / "deploy" / "nginx" / "hubspot-relay.conf"


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "checking deploy/nginx (Debian's nginx)")
    assert doc_command("docs/deploying.md", "nginx") == "nginx -t"
    tls = tmp_path / "tls"
    tls.mkdir()
    run(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        f"-keyout {tls}/key.pem -out {tls}/cert.pem"
    )
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    for name in ("hubspot-relay.conf", "upstream.conf"):
        text = (ROOT / "deploy" / "nginx" / name).read_text()
        (conf_d / name).write_text(text.replace("/etc/hubspot-relay/tls/", f"{tls}/"))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {conf_d}/*.conf;\n}}\n"
    )
    result = subprocess.run([nginx, "-t", "-c", str(main)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr
    # and nginx notices a broken one (the check can fail)
    (conf_d / "upstream.conf").write_text("upstream other { server 127.0.0.1:8088; }\n")
    broken = subprocess.run([nginx, "-t", "-c", str(main)], capture_output=True, text=True, check=False)
    assert broken.returncode != 0 and "hubspot_relay" in broken.stderr


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-For", "$remote_addr"),
        ("X-Forwarded-Proto", "$scheme"),
        ("X-Forwarded-Host", "$http_host"),
        ("Forwarded", '""'),
        ("Host", "$host"),
    ],
)
def test_forwarded_headers_are_set_never_appended(header: str, value: str) -> None:
    text = CONF.read_text()
    assert re.findall(rf"^\s*proxy_set_header {header} (\S+);", text, re.M) == [value]
    assert "$proxy_add_x_forwarded_for" not in text


def test_limits_match_the_relay() -> None:
    from hubspot_relay.config_schema import _Relay
    from hubspot_relay.segment.messages import MAX_REQUEST_BYTES

    text = CONF.read_text()
    body = int(re.search(r"client_max_body_size (\d+)k;", text).group(1)) * 1024  # type: ignore[union-attr]
    assert MAX_REQUEST_BYTES < body <= 2 * MAX_REQUEST_BYTES  # the relay's own 413 reaches the client
    assert f"client_header_timeout {_Relay().header_timeout_s:.0f}s;" in text
    assert f"client_body_timeout {_Relay().body_timeout_s:.0f}s;" in text
    assert re.search(r"listen 443 ssl http2;", text)
    assert "ssl_certificate     /etc/hubspot-relay/tls/cert.pem;" in text
    assert "ssl_certificate_key /etc/hubspot-relay/tls/key.pem;" in text
    assert "server 127.0.0.1:8088" in (ROOT / "deploy" / "nginx" / "upstream.conf").read_text()
