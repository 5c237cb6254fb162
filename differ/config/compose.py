"""The run config composed from presets and `key=value` overrides, or from a saved run's config."""

from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError
from .migrate import FLAT_KEYS, _prune, migrate, sections_in_use
from .schema import PRESETS, RESUME_KEYS, SECTIONS, RunConfig
from .validate import validate


def algo_choices() -> list[str]:
    return sorted(p.stem for p in (PRESETS / "algo").glob("*.yaml"))


def env_choices() -> list[str]:
    """differ's env presets and those of plug-in env families (entry points, differ/envs/registry.py)."""
    from ..envs.registry import presets

    own = [p.stem for p in (PRESETS / "env").glob("*.yaml")]
    return sorted(set(own) | set(presets()))


def _preset(kind: str, name: str) -> DictConfig:
    choices = algo_choices() if kind == "algo" else env_choices()
    if name not in choices:  # the presets' own names only: also refuses algo=../env/lbf
        raise ConfigError(
            f"{kind}={name}: unknown {'algorithm' if kind == 'algo' else 'environment'}; "
            f"valid choices: {', '.join(choices)}"
        )
    path = PRESETS / kind / f"{name}.yaml"
    if path.exists():
        return OmegaConf.load(path)
    from ..envs.registry import presets

    return OmegaConf.create({"env": presets()[name]})


def _suggest(key: str) -> str:
    """Where a key of the old flat layout lives now, or the nearest valid dotted keys."""
    from ..learners import MIXERS

    old = key.removeprefix("algo.")
    if key.startswith("algo.") and old in FLAT_KEYS:
        section, new = FLAT_KEYS[old]
        owners = (
            [s for s, c in SECTIONS.items() if new in c.__dataclass_fields__ and s in MIXERS]
            if section == "@mixer"
            else [section]
        )
        return f" (it moved: {' or '.join(f'algo.{s}.{new}' for s in owners)})"
    valid = _all_keys(OmegaConf.structured(RunConfig))
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _all_keys(cfg, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, DictConfig) and k != "options":
            out += _all_keys(v, name + ".")
        else:
            out.append(name)
    return out


def _omegaconf_error(e: OmegaConfBaseException) -> ConfigError:
    """OmegaConf's message, first line only, with the key it is about in front."""
    msg = (str(getattr(e, "msg", "") or e).splitlines() or [type(e).__name__])[0]
    key = getattr(e, "full_key", None)
    return ConfigError(f"invalid value for {key}: {msg}" if key else f"invalid configuration: {msg}")


def load_run_config(path: Path) -> DictConfig:
    """A run directory's config.yaml, or one line saying why it cannot be used."""
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # YAML syntax, a python/object tag, unreadable file, ...
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(
            f"{path} cannot be read ({type(e).__name__}: {first}); it is not a differ "
            f"config: restore it, or start a new run in another run_dir"
        ) from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(
            f"{path} is not a differ config (a YAML mapping of keys), it holds a "
            f"{type(cfg).__name__}; restore it, or start a new run in another run_dir"
        )
    missing = [k for k in ("algo", "env", "seed", "t_max") if k not in cfg]
    if missing:
        raise ConfigError(
            f"{path} is not a differ run config (no {', '.join(missing)}); restore it, "
            f"or start a new run in another run_dir"
        )
    return migrate(cfg)


def build_config(overrides: dict[str, str], base: DictConfig | None = None) -> DictConfig:
    """Compose the run config from presets and `key=value` overrides; validate everything.

    `algo=NAME` and `env=NAME` choose presets. With `base` (a resumed run's config) presets are
    not re-applied: the overrides go on top of the saved config, and only `RESUME_KEYS` may
    change.
    """
    overrides = dict(overrides)
    schema = OmegaConf.structured(RunConfig)
    try:
        if base is None:
            algo = overrides.pop("algo", "qmix")
            env = overrides.pop("env", "smax")
            cfg = OmegaConf.merge(schema, _preset("algo", algo), _preset("env", env))
        else:
            for group in ("algo", "env"):
                if group in overrides:
                    raise ConfigError(f"'{group}=' cannot change on resume; start a new run instead")
            try:
                base = migrate(base)
                cfg = OmegaConf.merge(schema, base)
            except OmegaConfBaseException as e:
                raise ConfigError(
                    f"the run's saved config does not fit this version of differ "
                    f"({_omegaconf_error(e)}); start a new run"
                ) from None
        for k, v in overrides.items():
            if not str(v).strip():  # OmegaConf would read `key=` as null, silently
                raise ConfigError(f"{k}= needs a value (write {k}=null where none is meant)")
        dotlist = [f"{k}={v}" for k, v in overrides.items()]
        for item in dotlist:
            key = item.split("=", 1)[0]
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and not key.startswith(
                "env.options."
            ):
                raise ConfigError(f"unknown config key '{key}'{_suggest(key)}")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
        _check_sections(cfg, overrides)
        if base is not None:
            _check_resume_changes(base, cfg, overrides)
        cfg = _prune(cfg)
        validate(cfg)
    except OmegaConfBaseException as e:  # e.g. an interpolation to a key that does not exist
        raise _omegaconf_error(e) from None
    return cfg


def _check_sections(cfg: DictConfig, overrides: dict[str, str]) -> None:
    """Refuse a setting of a method the run does not use (it would be silently ignored)."""
    from ..learners import MIXERS

    used = sections_in_use(cfg.algo)
    for key in overrides:
        parts = key.split(".")
        if len(parts) >= 2 and parts[0] == "algo" and parts[1] in SECTIONS and parts[1] not in used:
            role = "mixer" if parts[1] in MIXERS else "agent" if parts[1] == "cem" else "learner"
            raise ConfigError(
                f"{key} does not apply: it configures the {role} '{parts[1]}', and this run "
                f"uses mixer={cfg.algo.mixer}, learner={cfg.algo.learner}, agent={cfg.algo.agent}"
            )


def _check_resume_changes(base: DictConfig, cfg: DictConfig, overrides: dict[str, str]) -> None:
    for key in overrides:
        if key in RESUME_KEYS:
            continue
        if OmegaConf.select(base, key, default=None) != OmegaConf.select(cfg, key, default=None):
            raise ConfigError(
                f"{key} cannot change on resume (the checkpoint was trained with "
                f"{OmegaConf.select(base, key, default=None)!r}); start a new run in another run_dir. "
                f"A resume may change: {', '.join(RESUME_KEYS)}"
            )
