"""Endpoint addresses: what a base URL may hold, how it is shown, whether it is nearby."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlsplit, urlunsplit

# Query parameters that carry a credential (compared lower-case, `-` read as `_`).
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "auth",
        "authorization",
        "password",
        "secret",
        "sig",
        "signature",
        "code",
    }
)


def url_credentials(url: str) -> bool:
    """Tell whether an address carries a user name, password or key-like query parameter."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if "@" in parts.netloc:
        return True
    return any(
        name.strip().lower().replace("-", "_") in SECRET_PARAMS
        for name, _value in parse_qsl(parts.query, keep_blank_values=True)
    )


def redact_url(url: str) -> str:
    """Return an address fit for logs and diagnostics: no user info, query or fragment."""
    try:
        parts = urlsplit(url.strip())
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "**REDACTED**"


# Host names that only a home network (or this machine) resolves.
_LOCAL_SUFFIXES = (".local", ".localhost", ".lan", ".home", ".home.arpa", ".internal")


def is_local_address(url: str) -> bool:
    """Tell whether an address points to this machine or the local network, not the internet.

    Loopback, private, link-local and carrier-grade (100.64/10) addresses, `localhost`,
    single-label names (`ollama`, a container's) and home-network suffixes are local.
    """
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return "." not in host
