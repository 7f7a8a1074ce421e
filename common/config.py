"""Typed reading of Flower-style config mappings (kebab-case keys).

Config is data: it is read once, here, into frozen dataclasses; a missing or
bad value raises :class:`~hospfed.common.errors.ConfigError` naming the key,
the value and what is allowed. Nothing deeper reads raw config dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hospfed.common.errors import ConfigError

ConfigMapping = Mapping[str, Any]


def get_int(config: ConfigMapping, key: str, default: int, *, minimum: int) -> int:
    """Return ``config[key]`` as an int >= ``minimum`` (``default`` if absent)."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{key}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {number}")
    return number


def get_float(
    config: ConfigMapping,
    key: str,
    default: float,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    """Return ``config[key]`` as a float, checking its lower bound."""
    value = config.get(key, default)
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if positive and not number > 0:
        raise ConfigError(f"{key}: must be > 0, got {number}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {number}")
    return number


def get_choice(
    config: ConfigMapping, key: str, default: str, allowed: Sequence[str]
) -> str:
    """Return ``config[key]`` (lower-cased) if it is one of ``allowed``."""
    value = str(config.get(key, default)).strip().lower()
    if value not in allowed:
        raise ConfigError(
            f"{key}: unknown value {value!r}; allowed: {', '.join(allowed)}"
        )
    return value


def get_bool(config: ConfigMapping, key: str, default: bool) -> bool:
    """Return ``config[key]`` as a bool (accepts true/false strings)."""
    value = config.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def get_widths(config: ConfigMapping, key: str) -> tuple[int, ...]:
    """Read layer widths written as ``"32,16"`` (empty: no hidden layer)."""
    text = str(config.get(key, "")).strip()
    if not text:
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{key}: expected comma-separated widths like '32,16', got {text!r}"
        ) from None
    if any(width < 1 for width in widths):
        raise ConfigError(f"{key}: widths must be >= 1, got {text!r}")
    return widths
