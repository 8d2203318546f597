"""The agent of the memory tests: an `openai` agent on the fake server, with memory on."""

from __future__ import annotations

from typing import Any

import pytest

from ..fake_openai import FakeOpenAI
from ..helpers import openai_agent_data
from .household import MEMORY_OPTIONS


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent on the fake server, with the Assist API."""
    return openai_agent_data(fake_openai.base_url)


@pytest.fixture
def agent_options() -> dict[str, Any]:
    """Return the options of an agent with memory on."""
    return dict(MEMORY_OPTIONS)
