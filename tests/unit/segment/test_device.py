from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from starlette.testclient import TestClient

from hubspot_relay.config import Config, Source, sandbox_account
from hubspot_relay.options import DeliveryOptions
from hubspot_relay.secrets import Secret
from hubspot_relay.segment.device import cdn_settings
from hubspot_relay.server import create_app

ACCOUNT = replace(
    sandbox_account(),
    eu=True,
    delivery=DeliveryOptions(flush_identify_immediately=True, event_names={"Bought Item": "pe1_buy"}),
)


def test_cdn_settings_point_the_client_at_the_relay_and_list_the_plugin() -> None:
    source = Source("web", Secret("wk"), "sandbox")
    body = cdn_settings(source, ACCOUNT, "https", "relay.example:8443", script_url=None)
    assert body["integrations"]["Segment.io"]["apiHost"] == "relay.example:8443/v1"
    assert body["integrations"]["Segment.io"]["protocol"] == "https"
    assert body["integrations"]["Segment.io"]["apiKey"] == "wk"
    assert body["integrations"]["HubSpot"] == {"bundlingStatus": "bundled", "hubId": "997086"}
    (plugin,) = body["remotePlugins"]
    assert plugin["url"] == "https://relay.example:8443/plugins/hubspot.js"
    assert plugin["libraryName"] == "hubspotRelayPlugin" and plugin["creationName"] == "HubSpot"
    assert plugin["settings"] == {
        "hubId": "997086",
        "apiMode": "v3",
        "euDataCenter": True,
        "loadFormsSdk": False,
        "flushIdentifyImmediately": True,
        "eventNames": {"Bought Item": "pe1_buy"},
        "scriptUrl": None,
        "consentCategories": [],
    }


def test_the_plugin_gets_the_sources_consent_categories() -> None:
    source = Source("web", Secret("wk"), "sandbox", consent_categories=("Marketing",))
    (plugin,) = cdn_settings(source, ACCOUNT, "https", "h", script_url=None)["remotePlugins"]
    assert plugin["settings"]["consentCategories"] == ["Marketing"]


def test_hubspot_off_for_a_source_removes_the_plugin() -> None:
    body = cdn_settings(
        Source("web", Secret("wk"), "sandbox", enabled=False), ACCOUNT, "http", "h", script_url=None
    )
    assert body["remotePlugins"] == [] and "HubSpot" not in body["integrations"]
    assert "Segment.io" in body["integrations"]  # cloud events still come to the relay


def test_settings_route_plugin_and_assets(tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path,
        host="127.0.0.1",
        port=0,
        accounts=(sandbox_account(),),
        sources=(Source("web", Secret("wk"), "sandbox"),),
        public_url="https://relay.example",
    )
    assets = tmp_path / "umd"
    assets.mkdir()
    (assets / "standalone.js").write_text("/* analytics.js */")
    (assets / "407.bundle.abc.js").write_text("/* chunk */")
    app = create_app(config, deliver=False, analytics_js_dir=assets)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        r = client.get("/v1/projects/wk/settings", headers={"Origin": "https://shop.example"})
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=60"
        assert r.headers["access-control-allow-origin"] == "*"
        plugin = r.json()["remotePlugins"][0]
        assert plugin["url"] == "https://relay.example/plugins/hubspot.js"
        assert (
            plugin["settings"]["scriptUrl"] == "https://relay.example/demo/hubspot-standin.js"
        )  # sandbox account
        assert client.get("/v1/projects/nope/settings").status_code == 404
        js = client.get("/plugins/hubspot.js")
        assert js.status_code == 200 and "window.hubspotRelayPlugin" in js.text
        assert client.get("/analytics.js/v1/wk/analytics.min.js").text == "/* analytics.js */"
        assert client.get("/analytics-next/bundles/407.bundle.abc.js").status_code == 200
        assert client.get("/analytics-next/bundles/..%2F..%2Fsecret").status_code == 404
        assert "hubspot-relay demo" in client.get("/demo").text
        assert client.get("/demo/api/recent").json() == []


def test_in_development_the_settings_carry_the_key_the_client_asked_with(tmp_path: Path) -> None:
    from hubspot_relay.config import load_env

    config = load_env({"HUBSPOT_RELAY_DATA_DIR": str(tmp_path)})  # no write key: any is let in
    with TestClient(create_app(config, deliver=False), client=("127.0.0.1", 50000)) as client:
        body = client.get("/v1/projects/any-key/settings").json()
    assert body["integrations"]["Segment.io"]["apiKey"] == "any-key"  # else the browser's events get a 401
