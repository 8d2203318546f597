"""Keep credentials out of addresses: what a base URL may hold, and how it is shown."""

from __future__ import annotations

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
