"""A real websocket client of Home Assistant's API, as the frontend's Assist dialog uses it.

Home Assistant's HTTP server listens on a free port of 127.0.0.1; the client authenticates
with an access token of an admin user and times every pipeline event as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
import itertools
import time
from typing import Any

from aiohttp import ClientSession, ClientWebSocketResponse
from aiohttp.test_utils import unused_port
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from tests.pipeline_runs import create_text_pipeline, run_text

CLIENT_ID = "https://bench.example/"


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """A pipeline event and when it reached the client (seconds after the run was sent)."""

    at: float
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TimedRun:
    """The events of one pipeline run and when its command was sent (time.perf_counter)."""

    sent: float
    events: list[TimedEvent]


class Websocket:
    """An authenticated websocket connection; one command at a time."""

    def __init__(self, socket: ClientWebSocketResponse) -> None:
        """Wrap an open, authenticated socket."""
        self._socket = socket
        self._ids = itertools.count(1)

    async def command(self, message: dict[str, Any]) -> Any:
        """Send a command and return its result; raise if it failed."""
        await self._socket.send_json({**message, "id": next(self._ids)})
        reply = await self._socket.receive_json()
        if not reply.get("success"):
            raise RuntimeError(f"{message['type']} failed: {reply}")
        return reply["result"]

    async def create_pipeline(self, conversation_engine: str) -> str:
        """Create a text-only pipeline answered by an agent; return its id."""
        result = await self.command(
            create_text_pipeline(conversation_engine, name=conversation_engine)
        )
        pipeline_id: str = result["id"]
        return pipeline_id

    async def run_text(
        self, pipeline_id: str, text: str, device_id: str, conversation_id: str | None = None
    ) -> TimedRun:
        """Run the intent stage for a device; return its events, timed from the send."""
        started = time.perf_counter()
        await self.command(run_text(pipeline_id, text, device_id, conversation_id))
        events: list[TimedEvent] = []
        while not events or events[-1].type != "run-end":
            message = await self._socket.receive_json()
            event = message["event"]
            events.append(
                TimedEvent(time.perf_counter() - started, event["type"], event.get("data") or {})
            )
        if errors := [e.data for e in events if e.type == "error"]:
            raise RuntimeError(f"pipeline error: {errors}")
        return TimedRun(started, events)


@asynccontextmanager
async def async_serving(hass: HomeAssistant) -> AsyncIterator[int]:
    """Serve Home Assistant's HTTP API on a free port of 127.0.0.1; yield the port.

    Enter it before setting up anything that depends on `http` (assist_pipeline does), so
    that this configuration is the one `http` is set up with.
    """
    port = unused_port()
    assert await async_setup_component(
        hass, "http", {"http": {"server_host": "127.0.0.1", "server_port": port}}
    )
    assert await async_setup_component(hass, "websocket_api", {})
    # A test instance is already running, so http's own start (at Home Assistant's start,
    # or once the frontend is set up) never comes: start the server as that would.
    await hass.http.start()
    try:
        yield port
    finally:
        await hass.http.stop()


@asynccontextmanager
async def async_connect(hass: HomeAssistant, port: int) -> AsyncIterator[Websocket]:
    """Open an authenticated websocket to Home Assistant as an admin."""
    admin = await hass.auth.async_create_user("Bench", group_ids=[GROUP_ID_ADMIN])
    refresh_token = await hass.auth.async_create_refresh_token(admin, CLIENT_ID)
    token = hass.auth.async_create_access_token(refresh_token)
    async with (
        ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{port}/api/websocket") as socket,
    ):
        assert (await socket.receive_json())["type"] == "auth_required"
        await socket.send_json({"type": "auth", "access_token": token})
        reply = await socket.receive_json()
        if reply["type"] != "auth_ok":
            raise RuntimeError(f"websocket authentication failed: {reply}")
        yield Websocket(socket)
