"""Field checks shared by every config validation (the run's groups in `tfnet_jax.config_checks`,
each family's own `check_config`): each raises a one-line ConfigError,
`config: <field>=<value>: <what it must be>`."""
from __future__ import annotations

import difflib

from tfnet_jax.errors import ConfigError


def fail(path: str, value, why: str):
    raise ConfigError(f"config: {path}={value!r}: {why}")


def _path(group: str, key: str) -> str:
    """`group.key`; a command's top-level key (group "") is named alone, as it is typed."""
    return f"{group}.{key}" if group else key


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(node: dict, group: str, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        value = node.get(key)
        if not _is_int(value) or value < minimum:
            fail(_path(group, key), value, "must be a positive integer" if minimum == 1
                  else f"must be an integer >= {minimum}")


def optional_positive_int(node: dict, group: str, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        if node.get(key) is not None:
            positive_int(node, group, key, minimum=minimum)


def number_in(node: dict, group: str, key: str, low: float, high: float, *,
              low_open: bool = False, high_open: bool = False) -> None:
    value = node.get(key)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (low < value if low_open else low <= value)
          and (value < high if high_open else value <= high))
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        fail(_path(group, key), value, f"must lie in {left}{low:g}, {high:g}{right}")


def positive_number(node: dict, group: str, *keys: str, allow_zero: bool = False) -> None:
    for key in keys:
        value = node.get(key)
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or value < 0 or (value == 0 and not allow_zero)):
            fail(_path(group, key), value,
                  "must be a number >= 0" if allow_zero else "must be a positive number")


def did_you_mean(value, choices, prefix: str = "") -> str:
    """`did you mean X? ` for the choice closest to a mistyped `value` ('' when none is close)."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"did you mean {prefix}{close[0]}? " if close else ""


def one_of(node: dict, group: str, key: str, choices) -> None:
    value = node.get(key)
    if value not in choices:
        fail(_path(group, key), value,
             f"{did_you_mean(value, choices)}expected one of {', '.join(map(str, choices))}")


def check_monitor(train: dict, accepted: list[str], family: str, pattern: str | None = None,
                  matches=None) -> None:
    """`train.monitor` must be one of the family's validation metrics (`accepted`), or match
    its `pattern` (shown in the message) as judged by `matches(monitor)`."""
    monitor = train.get("monitor")
    if monitor in accepted or (matches is not None and matches(str(monitor))):
        return
    fail("train.monitor", monitor, f"model.family={family} reports one of {', '.join(accepted)}"
          + (f" or {pattern}" if pattern else ""))
