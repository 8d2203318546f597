"""Ask an OpenAI-compatible endpoint which models it serves (`GET {base_url}/models`)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import DOMAIN, LOGGER
from .redact import redact_url

PROBE_TIMEOUT = 10.0
SETUP_PROBE_TIMEOUT = 5.0


class EndpointError(Exception):
    """The endpoint did not list its models; `error` is the flow's error key."""

    error = "unknown"


class CannotConnect(EndpointError):
    """Nothing answered, or the server behind it is down."""

    error = "cannot_connect"


class InvalidAuth(EndpointError):
    """The endpoint refused the API key."""

    error = "invalid_auth"


class UnexpectedResponse(EndpointError):
    """Something answered, but not like an OpenAI-compatible API."""


def normalize_base_url(base_url: str) -> str:
    """Return the base URL the way it is stored: no blanks, no trailing slash."""
    return base_url.strip().rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """Return the headers that authenticate a request (none without a key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def async_list_models(
    hass: HomeAssistant, base_url: str, api_key: str | None, *, max_wait: float = PROBE_TIMEOUT
) -> list[str]:
    """Return the ids of the models the endpoint serves, sorted."""
    session = async_get_clientsession(hass)
    try:
        async with (
            asyncio.timeout(max_wait),
            session.get(f"{base_url}/models", headers=auth_headers(api_key)) as response,
        ):
            if response.status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
                raise InvalidAuth(f"HTTP {response.status}")
            if response.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
                raise CannotConnect(f"HTTP {response.status}")
            if response.status >= HTTPStatus.BAD_REQUEST:
                raise UnexpectedResponse(f"HTTP {response.status}")
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise CannotConnect(str(err) or type(err).__name__) from err
    except ValueError as err:
        raise UnexpectedResponse(f"not JSON: {err}") from err
    return _model_ids(body)


def _model_ids(body: Any) -> list[str]:
    """Read the model ids of an OpenAI `list` object."""
    models = body.get("data") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise UnexpectedResponse("no model list in the answer")
    return sorted(
        {
            model["id"]
            for model in models
            if isinstance(model, dict) and isinstance(model.get("id"), str)
        }
    )


async def async_check_endpoint(hass: HomeAssistant, base_url: str, api_key: str | None) -> None:
    """Refuse setup if the endpoint rejects the key; anything else only warns.

    An endpoint that is down must not keep the agent (and its sessions) from loading:
    each turn then apologises until the endpoint is back.
    """
    try:
        await async_list_models(hass, base_url, api_key, max_wait=SETUP_PROBE_TIMEOUT)
    except InvalidAuth as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="invalid_auth",
            translation_placeholders={"base_url": redact_url(base_url)},
        ) from err
    except EndpointError as err:
        LOGGER.warning("The model endpoint %s is not answering yet: %s", redact_url(base_url), err)
