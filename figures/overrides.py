"""Overrides of a figure's settings from the command line: ``--set KEY=VALUE``.

A figure whose ``make`` takes ``overrides`` builds its settings with ``settings(quick)`` and then
:func:`apply_overrides`, so that e.g. the full version of a figure can be pointed at a data
folder (``--set data_root=/data``), run on fewer seeds (``--set seeds=[0,1]``) or for fewer epochs
without editing code. Values are read as JSON (numbers, lists, ``true``/``false``/``null``);
anything that is not JSON is taken as a string.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

__all__ = ["SettingsError", "parse_overrides", "apply_overrides"]


class SettingsError(ValueError):
    """A ``--set KEY=VALUE`` override that is malformed, unknown or of the wrong type."""


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["epochs=10", "seeds=[0, 1]", "data_root=/data"]`` → ``{"epochs": 10, ...}``.

    Raises
    ------
    SettingsError
        An item without ``=`` or with an empty key, or a key given twice.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise SettingsError(f"--set expects KEY=VALUE, got {item!r}")
        if key in overrides:
            raise SettingsError(f"--set gives {key!r} twice")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def _compatible(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``default`` (same kind; ints for floats; None is free)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return isinstance(value, type(default))


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                    figure: str) -> dict[str, Any]:
    """A copy of ``config`` with ``overrides`` applied; keys and kinds are checked.

    Parameters
    ----------
    config : mapping
        The figure's settings (:func:`settings` of its module).
    overrides : mapping or None
        New values by key (:func:`parse_overrides`).
    figure : str
        The figure's name, for the error messages.

    Raises
    ------
    SettingsError
        A key that the figure's settings do not have (the message lists the known keys), or a
        value of another kind than the setting's (e.g. a string for a number of epochs).
    """
    updated = dict(config)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise SettingsError(
                f"figure {figure!r} has no setting {key!r}; its settings are: {', '.join(sorted(config))}"
            )
        if not _compatible(config[key], value):
            raise SettingsError(
                f"setting {key!r} of figure {figure!r} expects a value like {config[key]!r}, got {value!r}"
            )
        updated[key] = float(value) if isinstance(config[key], float) and isinstance(value, int) else value
    return updated
