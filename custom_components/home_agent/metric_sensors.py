"""Sensors of an agent's last turn: time to the first text and to the reply, and tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime

from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .metrics import TurnMetrics, TurnMetricsHub

TOKENS = "tokens"


@dataclass(frozen=True, kw_only=True)
class TurnMetricDescription(SensorEntityDescription):
    """A metric of the last turn."""

    value_fn: Callable[[TurnMetrics], float | int | None]
    # Only the `openai` backend knows when text starts and what the server counted.
    model_only: bool = False


def _duration(
    key: str, value_fn: Callable[[TurnMetrics], float | None], *, model_only: bool = False
) -> TurnMetricDescription:
    """Describe a time of the last turn, in seconds."""
    return TurnMetricDescription(
        key=key,
        translation_key=key,
        value_fn=value_fn,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_display_precision=2,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        model_only=model_only,
    )


def _tokens(key: str, value_fn: Callable[[TurnMetrics], int | None]) -> TurnMetricDescription:
    """Describe a token count of the last turn."""
    return TurnMetricDescription(
        key=key,
        translation_key=key,
        value_fn=value_fn,
        native_unit_of_measurement=TOKENS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        model_only=True,
    )


METRICS: tuple[TurnMetricDescription, ...] = (
    _duration("first_text_time", lambda m: m.first_text, model_only=True),
    _duration("reply_time", lambda m: m.reply),
    _tokens("prompt_tokens", lambda m: m.prompt_tokens),
    _tokens("completion_tokens", lambda m: m.completion_tokens),
    _tokens("cached_prompt_tokens", lambda m: m.cached_tokens),
)


def metric_sensors(entry: HomeAgentConfigEntry) -> list[TurnMetricSensor]:
    """Return the metric sensors that fit the agent's backend."""
    model = entry.runtime_data.settings.uses_model
    return [
        TurnMetricSensor(entry, description)
        for description in METRICS
        if model or not description.model_only
    ]


class TurnMetricSensor(HomeAgentEntity, RestoreSensor):
    """One metric of the agent's last answered turn (never any text)."""

    entity_description: TurnMetricDescription

    def __init__(self, entry: HomeAgentConfigEntry, description: TurnMetricDescription) -> None:
        """Create the sensor of one metric."""
        super().__init__(entry)
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"

    @property
    def _hub(self) -> TurnMetricsHub:
        """Return the agent's metrics."""
        return self.entry.runtime_data.metrics

    async def async_added_to_hass(self) -> None:
        """Show the last value from before a restart, then follow the turns."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
        self.async_on_remove(self._hub.async_add_listener(self._async_turn_measured))

    def _async_turn_measured(self) -> None:
        """Show the metric of the turn just answered."""
        self._attr_native_value = self.entity_description.value_fn(self._hub.last)
        self.async_write_ha_state()
