"""Credentials and transcripts stay out of addresses, logs, diagnostics and leftover files."""

from __future__ import annotations

from collections.abc import AsyncGenerator
import json
import logging
from pathlib import Path
import socket
from unittest.mock import patch

from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir, storage
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent.const import (
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
)
from custom_components.home_agent.redact import redact_url, url_credentials

from .delegates import FailingAgent, async_setup_delegating_to
from .helpers import converse, make_device, setup_entry

PASSWORD = "hunter2-password"
KEY = "sk-query-secret-0123"
SAID = "my bank pin is 4711"
# Captured before phcc's hass_storage patches them, to work on real files.
REAL_STORE_LOAD = storage.Store._async_load
REAL_STORE_REMOVE = storage.Store.async_remove


@pytest.fixture
async def models_endpoint(socket_enabled: None) -> AsyncGenerator[str]:
    """Serve `GET /v1/models` on 127.0.0.1 to anybody; yield its base URL."""

    async def handle(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = web.Application()
    app.router.add_get("/v1/models", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


@pytest.fixture
async def refusing_port(socket_enabled: None) -> AsyncGenerator[int]:
    """Serve an endpoint on 127.0.0.1 that refuses every key; yield its port."""

    async def handle(_request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "Incorrect API key"}}, status=401)

    app = web.Application()
    app.router.add_get("/v1/models", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.fixture
def closed_port(socket_enabled: None) -> int:
    """Return a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "address",
    [
        f"http://user:{PASSWORD}@{{host}}",
        f"http://{{host}}?api-key={KEY}",
        f"http://{{host}}?api_key={KEY}",
        f"http://{{host}}?token={KEY}",
        f"http://{{host}}?foo=1&Key={KEY}",
    ],
)
async def test_an_address_with_credentials_is_refused_on_its_field(
    hass: HomeAssistant, models_endpoint: str, address: str
) -> None:
    """The key goes in the API key field (kept secret), not in the address."""
    assert await async_setup_component(hass, "homeassistant", {})
    base_url = address.format(host=models_endpoint)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "Kitchen", "backend": "openai"}
    )

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"base_url": base_url}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "openai"
    assert result["errors"] == {"base_url": "url_credentials"}
    strings = json.loads(
        (
            Path(__file__).parents[1] / "custom_components/home_agent/translations/en.json"
        ).read_text()
    )
    assert "API key field" in strings["config"]["error"]["url_credentials"]
    # A plain address with the key in its field goes through.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"base_url": f"http://{models_endpoint}", "api_key": KEY}
    )
    assert result["step_id"] == "model"
    assert KEY not in json.dumps(result["description_placeholders"])


async def test_reconfigure_refuses_an_address_with_credentials(
    hass: HomeAssistant, models_endpoint: str
) -> None:
    """Reconfiguring is held to the same rule; the entry keeps its clean address."""
    assert await async_setup_component(hass, "homeassistant", {})
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"backend": "openai", "base_url": f"http://{models_endpoint}", "api_key": ""},
        options={"model": "m"},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"base_url": f"http://user:{PASSWORD}@{models_endpoint}"}
    )

    assert result["errors"] == {"base_url": "url_credentials"}
    assert PASSWORD not in json.dumps(dict(entry.data))


async def test_an_older_entry_with_credentials_in_its_address_never_shows_them(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry from an older release: its address is shown without credentials everywhere."""
    caplog.set_level(logging.DEBUG)
    base_url = f"http://user:{PASSWORD}@127.0.0.1:{closed_port}/v1?api-key={KEY}"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Old agent",
        data={"backend": "openai", "base_url": base_url, "api_key": ""},
        options={"model": "m"},
    )
    entry.add_to_hass(hass)
    await setup_entry(hass, entry)
    result = await hass.config_entries.options.async_init(entry.entry_id)

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    reconfigure = await entry.start_reconfigure_flow(hass)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"127.0.0.1:{closed_port}" in logged  # the warning says which endpoint...
    for secret in (PASSWORD, KEY):  # ...without its credentials
        assert secret not in logged
        assert secret not in json.dumps(diagnostics)
        assert secret not in json.dumps(result["description_placeholders"])
    clean = f"http://127.0.0.1:{closed_port}/v1"
    assert diagnostics["entry"]["data"]["base_url"] == clean
    # Reconfiguring offers the address without them, to be moved to the API key field.
    (base_url_key,) = (key for key in reconfigure["data_schema"].schema if key == "base_url")
    assert base_url_key.description["suggested_value"] == clean


async def test_a_refused_key_is_reported_without_the_credentials_of_the_address(
    hass: HomeAssistant, refusing_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Set-up fails with re-authentication; the log line and the dialog name the host only."""
    caplog.set_level(logging.DEBUG)
    base_url = f"http://user:{PASSWORD}@127.0.0.1:{refusing_port}/v1"
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"backend": "openai", "base_url": base_url, "api_key": ""},
        options={"model": "m"},
    )
    entry.add_to_hass(hass)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    shown = json.dumps([flow.get("description_placeholders") for flow in flows])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"http://127.0.0.1:{refusing_port}/v1" in logged
    assert PASSWORD not in logged
    assert PASSWORD not in shown


def test_redact_url_keeps_the_host_and_drops_credentials() -> None:
    """What an address looks like in a log line."""
    assert redact_url(f"https://me:{PASSWORD}@api.example.com:8443/v1?key={KEY}#x") == (
        "https://api.example.com:8443/v1"
    )
    assert redact_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


async def test_a_delegates_error_text_is_logged_only_at_debug(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure is reported (once) without what was said; the details are at debug."""
    caplog.set_level(logging.DEBUG)
    await async_setup_delegating_to(
        hass,
        FailingAgent(RuntimeError),
        {CONF_SESSION_TIMEOUT: 3600, CONF_SESSION_SCOPE: "device"},
    )

    result = await converse(hass, text=SAID, device_id=make_device(hass, "Kitchen satellite"))

    assert result.response.response_type.value == "error"
    ours = [r for r in caplog.records if r.name.startswith("custom_components.home_agent")]
    louder = [r for r in ours if r.levelno > logging.DEBUG]
    assert louder  # the failure is reported...
    for record in louder:  # ...without what was said, and without a traceback
        assert SAID not in record.getMessage()
        assert record.exc_info is None
    assert any(r.exc_info for r in ours if r.levelno == logging.DEBUG)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{ this is not json", id="corrupt"),
        pytest.param(
            json.dumps({"version": 1, "minor_version": 1, "key": "k", "data": {"sessions": 7}}),
            id="unreadable",
        ),
    ],
)
async def test_removing_an_agent_leaves_no_file_and_no_repair_behind(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    content: str,
) -> None:
    """The file kept aside (it may hold transcripts) and its repair issue go with the agent."""
    storage_dir = Path(hass.config.path(".storage"))
    storage_dir.mkdir(parents=True, exist_ok=True)
    path = storage_dir / f"{DOMAIN}.{config_entry.entry_id}"
    other = storage_dir / f"{DOMAIN}.another-agent.unreadable.20250101T000000"
    path.write_text(content)
    # A copy kept aside on an earlier start.
    (storage_dir / f"{path.name}.unreadable.20240101T000000").write_text(SAID)
    other.write_text(SAID)
    try:
        with (
            patch.object(storage.Store, "_async_load", REAL_STORE_LOAD),
            patch.object(storage.Store, "async_remove", REAL_STORE_REMOVE),
        ):
            await setup_entry(hass, config_entry)
            assert len(list(storage_dir.glob(f"{path.name}.*"))) == 2
            ours = [
                issue_id
                for _domain, issue_id in issue_registry.issues
                if config_entry.entry_id in issue_id
            ]
            assert ours

            assert await hass.config_entries.async_remove(config_entry.entry_id)
            await hass.async_block_till_done()

        assert list(storage_dir.glob(f"{path.name}*")) == []
        assert [
            issue_id
            for _domain, issue_id in issue_registry.issues
            if config_entry.entry_id in issue_id
        ] == []
        assert other.exists()  # another agent's file is not ours to delete
    finally:
        for leftover in storage_dir.glob(f"{DOMAIN}.*"):
            leftover.unlink()


@pytest.mark.parametrize(
    ("address", "shown", "has_credentials"),
    [
        ("http://user:pass@host:8080/v1?api-key=x#top", "http://host:8080/v1", True),
        ("https://host/v1?api-version=2024", "https://host/v1", False),
        ("http://[::1/v1", "**REDACTED**", False),  # not even an address: nothing shown
    ],
)
def test_addresses_are_shown_without_credentials(
    address: str, shown: str, has_credentials: bool
) -> None:
    """What logs and diagnostics show of an address, malformed ones included."""
    assert redact_url(address) == shown
    assert url_credentials(address) is has_credentials
