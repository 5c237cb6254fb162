"""Typed run configuration: a dataclass schema, YAML presets and `key=value` overrides.

Resolution order (later wins): schema defaults < algorithm preset (`presets/algo/<algo>.yaml`)
< environment preset (`presets/env/<env>.yaml`) < command-line overrides. OmegaConf checks every
key and type against the schema, so a typo fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PRESETS = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """Bad user input in the configuration; the message names the problem and the fix."""


@dataclass
class EnvConfig:
    name: str = "smax"
    scenario: str = "3m"
    num_envs: int = 8  # episodes collected in parallel per batch
    time_limit: Optional[int] = None  # None: the environment's own limit
    test_num_envs: Optional[int] = None  # copies for test episodes; None: reuse the training envs
    options: dict[str, Any] = field(default_factory=dict)  # family-specific keyword arguments


@dataclass
class AlgoConfig:
    name: str = "qmix"
    mixer: str = "qmix"  # vdn | qmix
    agent_hidden: int = 64
    mixing_embed_dim: int = 32
    hypernet_hidden: int = 64
    gamma: float = 0.99
    double_q: bool = True
    lr: float = 5e-4
    optim_alpha: float = 0.99  # RMSprop smoothing
    optim_eps: float = 1e-5
    grad_clip: float = 10.0
    batch_size: int = 32  # episodes per training step
    buffer_size: int = 5000  # episodes
    train_steps_per_episode: float = 1.0  # the paper: one training step per collected episode
    target_update_episodes: int = 200
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000
    obs_dtype: str = "float16"  # how the buffer stores observations and states: float16 | float32
    l1_reg: float = 0.0  # L1 weight on the agent parameters (Table 1 of the paper; unused by the authors' QMIX)
    # ---- DIFFER (learner=differ); METHOD.md §3-4
    learner: str = "team"  # team: one TD loss trains all | differ: mixer on team TD, agents on individual TD
    selection: str = "per"  # per: fair experience replay | all: every valid experience, weight 1 (-divide)
    eta_start: float = 0.8  # sample ratio η at the start of the warm-up
    eta_end: float = 1.0
    eta_warmup_frac: float = 0.6  # η reaches eta_end after this fraction of t_max
    eta_warmup: bool = True  # false: η stays at eta_start (the paper's Fig. 11 ablation)
    beta_start: float = 0.6  # importance-sampling exponent, annealed over t_max
    beta_end: float = 1.0
    per_alpha: float = 0.8  # prioritisation exponent
    per_eps: float = 0.01
    g_clamp: Optional[float] = None  # clamp ∂Q_tot/∂Q_i to [-g_clamp, g_clamp]; None: exact, unclamped


@dataclass
class RunConfig:
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = 1
    t_max: int = 2_005_000
    run_dir: Optional[str] = None  # default: runs/<algo>_<env>_<scenario>_s<seed>_<time>
    test_interval: int = 10_000  # env steps between greedy evaluations
    test_episodes: int = 32
    log_interval: int = 10_000  # env steps between metric records
    checkpoint_interval: int = 100_000  # env steps between full checkpoints (0: only the final one)
    torch_threads: int = 0  # 0: one per core
    progress: Optional[bool] = None  # progress bar; null: only when stderr is a terminal
    tensorboard: bool = True


def algo_choices() -> list[str]:
    return sorted(p.stem for p in (PRESETS / "algo").glob("*.yaml"))


def env_choices() -> list[str]:
    return sorted(p.stem for p in (PRESETS / "env").glob("*.yaml"))


def _preset(kind: str, name: str) -> DictConfig:
    path = PRESETS / kind / f"{name}.yaml"
    if not path.exists():
        choices = algo_choices() if kind == "algo" else env_choices()
        raise ConfigError(f"unknown {'algorithm' if kind == 'algo' else 'environment'} '{name}'; "
                          f"valid choices: {', '.join(choices)}")
    return OmegaConf.load(path)


def _suggest(key: str) -> str:
    """Nearest valid dotted keys, for the error message."""
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


def build_config(overrides: dict[str, str], base: Optional[DictConfig] = None) -> DictConfig:
    """Compose the run config from presets and `key=value` overrides; validate everything.

    `algo=NAME` and `env=NAME` choose presets. With `base` (a resumed run's config) presets are
    not re-applied: the overrides go on top of the saved config.
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
            cfg = OmegaConf.merge(schema, base)
        dotlist = [f"{k}={v}" for k, v in overrides.items()]
        for item in dotlist:
            key = item.split("=", 1)[0]
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and not key.startswith("env.options."):
                raise ConfigError(f"unknown config key '{key}'{_suggest(key)}")
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"invalid configuration: {msg}") from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Semantic checks that a schema cannot express; resolves the scenario to its canonical name."""
    from .envs.registry import UnknownEnvError, resolve_scenario
    from .learners import MIXERS

    if cfg.algo.mixer not in MIXERS:
        raise ConfigError(f"unknown mixer '{cfg.algo.mixer}'; valid choices: {', '.join(MIXERS)}")
    try:
        cfg.env.scenario = resolve_scenario(cfg.env.name, cfg.env.scenario)
    except UnknownEnvError as e:
        raise ConfigError(str(e)) from None
    positive = {"t_max": cfg.t_max, "env.num_envs": cfg.env.num_envs,
                "algo.batch_size": cfg.algo.batch_size, "algo.buffer_size": cfg.algo.buffer_size,
                "test_interval": cfg.test_interval, "log_interval": cfg.log_interval}
    for k, v in positive.items():
        if v <= 0:
            raise ConfigError(f"{k} must be positive, got {v}")
    if not 0 < cfg.algo.lr < float("inf"):  # also rejects nan
        raise ConfigError(f"algo.lr must be a positive finite number, got {cfg.algo.lr}")
    if cfg.algo.batch_size > cfg.algo.buffer_size:
        raise ConfigError(f"algo.batch_size ({cfg.algo.batch_size}) exceeds algo.buffer_size "
                          f"({cfg.algo.buffer_size})")
    for key, choices in (("learner", ("team", "differ")), ("selection", ("per", "all"))):
        if cfg.algo[key] not in choices:
            raise ConfigError(f"algo.{key} must be one of {', '.join(choices)}, got '{cfg.algo[key]}'")
    if not 0 < cfg.algo.eta_start <= 1 or not 0 < cfg.algo.eta_end <= 1:
        raise ConfigError("algo.eta_start and algo.eta_end must lie in (0, 1]")
    if cfg.algo.obs_dtype not in ("float16", "float32"):
        raise ConfigError(f"algo.obs_dtype must be float16 or float32, got '{cfg.algo.obs_dtype}'")
