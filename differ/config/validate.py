"""Every value checked where it is typed: the checks each key declares in the schema, then the
ones that relate several keys; one line naming the key."""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .schema import _interval, schema_keys


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(cfg: DictConfig) -> None:
    """Range checks for every value, naming the key; resolves the scenario to its canonical name."""
    from ..device import resolve_device
    from ..envs.registry import UnknownEnvError, families, resolve_scenario
    from ..learners import LEARNERS, MIXERS

    a, e = cfg.algo, cfg.env

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            value = OmegaConf.select(cfg, key)
            raise ConfigError(f"{key} must be {what}, got {value!r}")

    def present(key: str) -> bool:  # a section key exists only where the run uses the section
        return OmegaConf.select(cfg, key, default="__absent__") != "__absent__"

    def in_range(key: str, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
        if not present(key):
            return
        v = OmegaConf.select(cfg, key)
        ok = _finite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        need(ok, key, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")

    # the checks each key declares in the schema (`key(...)` above)
    for path, f in schema_keys():
        m = f.metadata
        if not present(path):
            continue
        value = OmegaConf.select(cfg, path)
        if m.get("at_least") is not None:
            need(value >= m["at_least"], path, f"an integer >= {m['at_least']}")
        if m.get("within") and value is not None:
            in_range(path, *_interval(m["within"]))
        if m.get("choices") and value not in m["choices"]:
            raise ConfigError(f"{path} must be one of {', '.join(m['choices'])}, got '{value}'")
    need(cfg.seed < 2**32, "seed", "below 2**32")
    need(cfg.torch_threads <= 1024, "torch_threads", "at most 1024 (0: one per idle core)")
    resolve_device(cfg.device)  # one line if it is malformed or absent here
    for key in ("env.time_limit", "env.test_num_envs"):
        v = OmegaConf.select(cfg, key)
        need(v is None or v >= 1, key, "null or an integer >= 1")
    need(isinstance(e.options, DictConfig), "env.options", "a mapping of keyword arguments")

    if present("algo.cem.samples"):  # an interval that depends on another key
        in_range("algo.cem.elites", 2, a.cem.samples)
    if a.mixer not in MIXERS:
        raise ConfigError(f"algo.mixer: unknown mixer '{a.mixer}'; valid choices: {', '.join(MIXERS)}")
    if a.learner not in LEARNERS:
        raise ConfigError(f"algo.learner must be one of {', '.join(LEARNERS)}, got '{a.learner}'")
    for key in ("skip_empty_obs", "skip_padding"):
        if a[key] and a.agent != "rnn":
            raise ConfigError(f"algo.{key}=true needs the rnn agent, not algo.agent={a.agent}")
    if a.fused_gru and a.agent != "rnn":
        raise ConfigError(f"algo.fused_gru=true needs the rnn agent, not algo.agent={a.agent}")
    if a.batch_size > a.buffer_size:
        raise ConfigError(f"algo.batch_size ({a.batch_size}) exceeds algo.buffer_size ({a.buffer_size})")
    if cfg.run_dir is not None and not str(cfg.run_dir).strip():
        raise ConfigError("run_dir must not be empty (leave it out for runs/<algo>_<env>_...)")
    found = families()
    if e.name not in found:
        raise ConfigError(
            f"env.name={e.name}: unknown environment; valid choices: {', '.join(found)} "
            f"(a family another package registers needs that package installed)"
        )
    try:
        cfg.env.scenario = resolve_scenario(e.name, e.scenario)
    except UnknownEnvError as err:
        raise ConfigError(f"env.scenario: {err}") from None
