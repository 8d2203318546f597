"""Config flow for Home Agent (minimal; completed by the config-flow work)."""

from __future__ import annotations

from homeassistant.config_entries import ConfigFlow

from .const import DOMAIN


class HomeAgentConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Home Agent agent."""

    VERSION = 1
