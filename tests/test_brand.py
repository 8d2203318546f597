"""Home Agent's own icon and logo, served by Home Assistant's brands API (2026.3 on)."""

from __future__ import annotations

from http import HTTPStatus
import importlib.util
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent.const import DOMAIN

BRAND = Path(__file__).parent.parent / "custom_components" / DOMAIN / "brand"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("homeassistant.components.brands") is None,
    reason="brand images of custom integrations are served from Home Assistant 2026.3 on",
)


@pytest.mark.parametrize(
    ("image", "file"),
    [
        ("icon.png", "icon.png"),
        ("icon@2x.png", "icon@2x.png"),
        ("logo.png", "logo.png"),
        ("dark_logo.png", "dark_logo.png"),
        # No dark icon of its own: the icon reads on both backgrounds.
        ("dark_icon.png", "icon.png"),
    ],
)
async def test_the_frontend_gets_our_images(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, image: str, file: str
) -> None:
    """The integration's page and the add dialog show Home Agent's icon, never the CDN's."""
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()

    response = await client.get(f"/api/brands/integration/{DOMAIN}/{image}")

    assert response.status == HTTPStatus.OK
    assert response.content_type == "image/png"
    assert await response.read() == (BRAND / file).read_bytes()
