"""Overrides of a figure's settings from the command line: ``--set KEY=VALUE``.

A figure whose ``make`` takes ``overrides`` builds its settings with ``settings(quick)`` and then
:func:`apply_overrides`, so that e.g. the full version of a figure can be pointed at a data
folder (``--set data_root=/data``), run on fewer seeds (``--set seeds=[0,1]``) or for fewer epochs
without editing code. Values are read as JSON (numbers, lists, ``true``/``false``/``null``);
anything that is not JSON is taken as a string.

Every override is checked when the command line is parsed, before any figure runs: the key must
be one of the figure's settings, the value of the setting's kind, and within the range of the
setting's rule (:class:`Rule`). The rules are declared by setting name in :data:`SETTING_RULES`
(``epochs`` is an integer >= 1, ``seeds`` a list of distinct integers >= 0, ``device`` one of
``auto``, ``cpu``, ``cuda[:i]``, ...); a figure module may declare its own ``SETTING_RULES`` (a
mapping of the same kind) that take precedence for its settings.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SettingsError", "Rule", "SETTING_RULES", "parse_overrides", "apply_overrides",
           "check_value"]


class SettingsError(ValueError):
    """A ``--set KEY=VALUE`` override that is malformed, unknown or of the wrong type."""


@dataclass(frozen=True)
class Rule:
    """The allowed values of one setting: ``accepts(value)`` and the words for them."""

    expects: str
    accepts: Callable[[Any], bool]
    allow_none: bool = False

    def check(self, value: Any) -> bool:
        if value is None:
            return self.allow_none
        try:
            return bool(self.accepts(value))
        except (TypeError, ValueError):
            return False


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def integer(minimum: int, *, none: bool = False) -> Rule:
    """An integer >= ``minimum`` (``none``: or null)."""
    words = f"an integer >= {minimum}" + (" or null" if none else "")
    return Rule(words, lambda v: _is_integer(v) and v >= minimum, none)


def real(minimum: float, *, strict: bool = False, maximum: float | None = None,
         strict_maximum: bool = False, none: bool = False) -> Rule:
    """A finite number >= ``minimum`` (> with ``strict``), optionally <= / < ``maximum``."""
    low = f"{'>' if strict else '>='} {minimum:g}"
    words = f"a finite number {low}"
    if maximum is not None:
        words += f" and {'<' if strict_maximum else '<='} {maximum:g}"
    words += " or null" if none else ""

    def accepts(value: Any) -> bool:
        if not _is_real(value) or value < minimum or (strict and value == minimum):
            return False
        return maximum is None or value < maximum or (not strict_maximum and value == maximum)

    return Rule(words, accepts, none)


def integers(minimum: int, *, distinct: bool = False, min_length: int = 1) -> Rule:
    """A list of at least ``min_length`` integers >= ``minimum`` (``distinct``: no repeats)."""
    words = (f"a list of {'distinct ' if distinct else ''}integers >= {minimum}"
             + (f" (at least {min_length})" if min_length > 1 else
                " (not empty)" if min_length == 1 else ""))

    def accepts(value: Any) -> bool:
        return (isinstance(value, list) and len(value) >= min_length
                and all(_is_integer(v) and v >= minimum for v in value)
                and (not distinct or len(set(value)) == len(value)))

    return Rule(words, accepts)


def reals(minimum: float, *, strict: bool = False) -> Rule:
    """A non-empty list of finite numbers >= ``minimum`` (> with ``strict``)."""
    single = real(minimum, strict=strict)
    words = f"a non-empty list of finite numbers {'>' if strict else '>='} {minimum:g}"
    return Rule(words, lambda v: isinstance(v, list) and len(v) > 0
                and all(single.check(item) for item in v))


def one_of(*choices: str, none: bool = False) -> Rule:
    """One of the strings ``choices``."""
    words = "one of " + ", ".join(repr(choice) for choice in choices) + (" or null" if none else "")
    return Rule(words, lambda v: isinstance(v, str) and v in choices, none)


def _device(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    kind, _, index = value.partition(":")
    if value in ("auto", "cpu", "mps"):
        return True
    return kind == "cuda" and (index == "" or index.isdigit())


def _classes(value: Any) -> bool:
    return isinstance(value, list) and (
        value == [] or (len(value) >= 2 and len(set(value)) == len(value)
                        and all(_is_integer(v) and v >= 0 for v in value)))


#: Datasets, standardizations and initializations of :mod:`fullnet` (``fullnet.data``,
#: ``fullnet.architectures``; a test keeps them equal).
DATASETS = ("mnist-5k", "mnist", "fashion-mnist", "cifar10", "gaussian")
STANDARDIZATIONS = ("none", "unit", "global", "channel", "feature", "centred")
INITIALIZATIONS = ("lecun", "he", "xavier", "uniform")

#: The allowed values of the figures' settings, by setting name (a figure module's own
#: ``SETTING_RULES`` take precedence). A setting without a rule is checked for its kind only.
SETTING_RULES: dict[str, Rule] = {
    # counts
    "epochs": integer(1),
    "steps": integer(1),
    "per_class": integer(1, none=True),
    "log_points": integer(0),
    "linear_depth": integer(1),
    "linear_width": integer(1),
    "head_width": integer(1),
    "first_width": integer(1),
    "width": integer(1),
    "num_layers": integer(1),
    "num_classes": integer(2),
    "threads": integer(1, none=True),
    "batch_size": integer(1, none=True),
    "workers": integer(1),
    # lists of counts
    "nonlinear_widths": integers(1),
    "backbone_widths": integers(1),
    "linear_depths": integers(1),
    "nonlinear_depths": integers(1),
    "widths": integers(1),
    "seeds": integers(0, distinct=True),
    "classes": Rule("an empty list (every class) or at least two distinct integers >= 0",
                    _classes),
    # step sizes, penalties, tolerances
    "learning_rate": real(0.0, strict=True),
    "lr": real(0.0, strict=True),
    "paper_learning_rate": real(0.0, strict=True),
    "learning_rates": reals(0.0, strict=True),
    "paper_learning_rates": reals(0.0, strict=True),
    "weight_decay": real(0.0),
    "paper_weight_decays": reals(0.0),
    "paper_weight_decay_times_depth": real(0.0),
    "lam": real(0.0, strict=True),
    "lam_h": real(0.0),
    "n_lam_h": real(0.0),
    "backbone_lam": real(0.0),
    "tolerance": real(0.0),
    "rank_tolerance": real(0.0, strict=True, maximum=1.0, strict_maximum=True),
    "lr_drop_fraction": real(0.0, strict=True, maximum=1.0),
    "lr_drop_factor": real(0.0, strict=True),
    "input_norm": real(0.0, strict=True),
    "head_init_gain": real(0.0, strict=True),
    "backbone_init_gain": real(0.0, strict=True),
    # choices
    "device": Rule("'auto', 'cpu', 'mps' or 'cuda[:i]'", _device),
    "dtype": one_of("float32", "float64"),
    "dataset": one_of(*DATASETS),
    "standardization": one_of(*STANDARDIZATIONS),
    "architecture": one_of("mlp", "resnet20"),
    "optimizer": one_of("gd", "sgd"),
    "init": one_of(*INITIALIZATIONS),
    "backbone_init": one_of(*INITIALIZATIONS, none=True),
}


def _shown(value: Any) -> str:
    """``value`` as it is written after ``--set KEY=`` (JSON), else its repr."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def check_value(key: str, value: Any, figure: str, default: Any = None,
                rules: Mapping[str, Rule] | None = None) -> None:
    """Raise :class:`SettingsError` unless ``value`` is allowed for setting ``key``.

    The rule is ``rules[key]`` (a figure's own), else :data:`SETTING_RULES[key]`; null is also
    allowed where the setting's default is null. A key without a rule is not checked here.
    """
    rule = (rules or {}).get(key) or SETTING_RULES.get(key)
    if rule is None or (value is None and default is None):
        return
    if not rule.check(value):
        raise SettingsError(
            f"setting {key!r} of figure {figure!r} expects {rule.expects}, got {_shown(value)}"
        )


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
                    figure: str, rules: Mapping[str, Rule] | None = None) -> dict[str, Any]:
    """A copy of ``config`` with ``overrides`` applied; keys and kinds are checked.

    Parameters
    ----------
    config : mapping
        The figure's settings (:func:`settings` of its module).
    overrides : mapping or None
        New values by key (:func:`parse_overrides`).
    figure : str
        The figure's name, for the error messages.
    rules : mapping, optional
        The figure's own :class:`Rule` per setting (before :data:`SETTING_RULES`).

    Raises
    ------
    SettingsError
        A key that the figure's settings do not have (the message lists the known keys), a
        value of another kind than the setting's (e.g. a string for a number of epochs), or
        outside the setting's rule (e.g. ``epochs=-5``).
    """
    updated = dict(config)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise SettingsError(
                f"figure {figure!r} has no setting {key!r}; its settings are: "
                f"{', '.join(sorted(config))}"
            )
        if not _compatible(config[key], value):
            raise SettingsError(
                f"setting {key!r} of figure {figure!r} expects a value like "
                f"{_shown(config[key])}, got {_shown(value)}"
            )
        check_value(key, value, figure, config[key], rules)
        updated[key] = float(value) if isinstance(config[key], float) and isinstance(value, int) else value
    return updated
