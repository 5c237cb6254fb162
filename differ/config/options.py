"""`key=value` arguments and the options of commands that are not config keys."""

from __future__ import annotations

from ..errors import ConfigError


def parse_overrides(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args:
        if "=" not in a or a.startswith("="):
            raise ConfigError(f"expected key=value, got '{a}'")
        k, v = a.split("=", 1)
        out[k.strip()] = v
    return out


def flag_option(opts: dict[str, str], key: str, default: bool = False) -> bool:
    """A command option (not a config key) that is `true` or `false`, e.g. `unfinished=true`."""
    value = str(opts.get(key, str(default))).lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{key} must be true or false, got '{opts[key]}'")
    return value == "true"


def number_option(opts: dict[str, str], key: str, default=None, minimum=1, kind=int):
    """A command option (not a config key) that is a number (`kind`: int or float) >= minimum."""
    if key not in opts:
        return default
    try:
        value = kind(opts[key])
    except ValueError:
        raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got '{opts[key]}'") from None
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {opts[key]}")
    return value


def int_option(opts: dict[str, str], key: str, default: int | None = None, minimum: int = 1) -> int | None:
    """A command option (not a config key) that is an integer >= minimum, e.g. `episodes=32`."""
    return number_option(opts, key, default, minimum, int)


def cli_value(v) -> str:
    """A config value as `key=value` writes it: null, true / false, numbers and plain strings."""
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
