"""Typed run configuration: a dataclass schema, YAML presets and `key=value` overrides.

Resolution order (later wins): schema defaults < algorithm preset (`presets/algo/<algo>.yaml`)
< environment preset (`presets/env/<env>.yaml`) < command-line overrides. OmegaConf checks every
key and type against the schema, so a typo fails at start-up instead of being silently ignored.

Settings shared by every algorithm sit directly under `algo`; those of one mixer or learner sit
in its section, `algo.<name>` (e.g. `algo.qmix.embed_dim`, `algo.differ.eta_start`). A run keeps
only the sections of the mixer and learner it uses. Configs saved in the flat layout of
differ 0.1 (before the sections) are read through `migrate`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError  # re-exported: bad user input, reported as one line

PRESETS = Path(__file__).parent / "presets"


def key(
    default: Any = MISSING,
    help: str = "",
    *,
    factory: Any = None,
    at_least: int | None = None,
    within: str | None = None,
    choices: tuple[str, ...] | None = None,
):
    """A config key: its default, its one-line help (`differ config`) and the checks `validate`
    runs on it: an integer `at_least`, a number `within` an interval written "[lo, hi)" (null
    passes where the type allows it), or one of `choices`."""
    meta = {"help": help, "at_least": at_least, "within": within, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _interval(text: str) -> tuple[float, float, bool, bool]:
    """ "(0, 1]" -> (0, 1, lo_open=True, hi_open=False); numbers keep their written form."""

    def number(x: str) -> float:
        x = x.strip()
        return math.inf if x == "inf" else int(x) if x.lstrip("-").isdigit() else float(x)

    lo, hi = text[1:-1].split(",")
    return number(lo), number(hi), text[0] == "(", text[-1] == ")"


def schema_keys(schema: type | None = None, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf key of the run config with its dataclass field: [("algo.gamma", Field), ...]."""
    out = []
    for f in fields(schema or RunConfig):
        if f.default_factory is not MISSING and is_dataclass(f.default_factory):
            out += schema_keys(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", f))
    return out


@dataclass
class EnvConfig:
    name: str = key("smax", help="environment family (differ envs lists them)")
    scenario: str = key("3m", help="task within the family")
    num_envs: int = key(8, help="episodes collected in parallel per batch", at_least=1)
    time_limit: Optional[int] = key(None, help="None: the environment's own limit")
    test_num_envs: Optional[int] = key(None, help="copies for test episodes; None: reuse the training envs")
    reward_scale: float = key(
        1.0,
        help="multiplies the team reward before anything sees it (buffer, targets, DIFFER's r_i, "
        "returns); env=smax: 10, SMAC's scale",
        within="(0, inf)",
    )
    options: dict[str, Any] = key(factory=dict, help="family-specific keyword arguments")


# ---- per-method sections: `algo.<name>` holds the settings of the mixer or learner called <name>.
# A run keeps only the sections of its own mixer and learner (config.yaml shows what applies);
# setting a key of another method's section is refused. A mixer's section is its constructor's
# keyword arguments (differ/nets/mixers.py), so a new mixer with settings adds one dataclass here.


@dataclass
class QMIXConfig:  # algo.qmix: the monotonic hypernetwork mixer
    embed_dim: int = key(32, help="width of the mixing layer", at_least=1)
    hypernet_hidden: int = key(64, help="hidden width of the hypernetworks", at_least=1)


@dataclass
class QPLEXConfig:  # algo.qplex: the duplex dueling mixer (DMAQ)
    hypernet_hidden: int = key(64, help="width of the w, v and λ hypernetworks", at_least=1)
    kernels: int = key(4, help="attention kernels of λ(s, a)", at_least=1)


@dataclass
class DifferConfig:  # algo.differ (learner=differ); docs/method.md §3-4
    selection: str = key(
        "per",
        help="per: fair experience replay | all: every valid experience, weight 1 (-divide)",
        choices=("per", "all"),
    )
    eta_start: float = key(0.8, help="sample ratio η at the start of the warm-up", within="(0, 1]")
    eta_end: float = key(1.0, help="sample ratio η at the end of the warm-up", within="(0, 1]")
    eta_warmup_frac: float = key(0.6, help="η reaches eta_end after this fraction of t_max", within="[0, 1]")
    eta_warmup: bool = key(True, help="false: η stays at eta_start (the paper's Fig. 11 ablation)")
    beta_start: float = key(0.6, help="importance-sampling exponent, annealed over t_max", within="[0, 1]")
    beta_end: float = key(1.0, help="importance-sampling exponent at t_max", within="[0, 1]")
    per_alpha: float = key(0.8, help="prioritisation exponent", within="[0, inf)")
    per_eps: float = key(0.01, help="priority offset ε: every valid experience can be drawn", within="(0, inf)")
    g_clamp: Optional[float] = key(
        None, help="clamp ∂Q_tot/∂Q_i to [-g_clamp, g_clamp]; None: exact, unclamped", within="(0, inf)"
    )


@dataclass
class MaserConfig:  # algo.maser (learner=maser), the paper's baseline; differ/learners/maser_learner.py
    alpha: float = key(0.5, help="subgoal score α·q̃_i + (1 − α)·Q̃_tot/N", within="[0, 1]")
    intrinsic_weight: float = key(0.03, help="λ, weight of the intrinsic reward", within="[0, inf)")
    individual_weight: float = key(0.0008, help="individual TD term (the published 0.001 × ind 0.8)", within="[0, inf)")
    train_phi: bool = key(False, help="the published code never trains φ; true: φ learns MASER's distance loss")
    phi_hidden: int = key(128, help="hidden width of the representation φ", at_least=1)


@dataclass
class CEMConfig:  # algo.cem (agent=cem): COMIX's continuous-action selection; differ/nets/cem.py
    samples: int = key(64, help="candidate actions per agent and step", within="[2, inf)")
    elites: int = key(6, help="best candidates the Gaussian is refitted to")
    iterations: int = key(2, help="CEM rounds; the best sample of the last one is taken", within="[1, inf)")
    action_noise: float = key(
        0.1, help="std of the Gaussian exploration noise in training (clamped to the box)", within="[0, inf)"
    )


SECTIONS = {"qmix": QMIXConfig, "qplex": QPLEXConfig, "differ": DifferConfig, "maser": MaserConfig, "cem": CEMConfig}


@dataclass
class AlgoConfig:
    name: str = key("qmix", help="the algorithm preset this run was built from")
    mixer: str = key("qmix", help="vdn | qmix | qplex (differ/nets/mixers.py)")
    learner: str = key(
        "team", help="team: one TD loss trains all | differ: mixer on team TD, agents on individual TD | maser"
    )
    agent: str = key(
        "rnn",
        help="rnn: DRQN, one Q per discrete action | cem: COMIX's Q_i(τ_i, a) for continuous actions, CEM argmax",
        choices=("rnn", "cem"),
    )
    agent_hidden: int = key(64, help="GRU width of the agent network", at_least=1)
    gamma: float = key(0.99, help="discount", within="[0, 1]")
    double_q: bool = key(True, help="targets at the live network's greedy action")
    optimiser: str = key("rmsprop", help="rmsprop | adam (both use lr and optim_eps)", choices=("rmsprop", "adam"))
    lr: float = key(5e-4, help="learning rate", within="(0, inf)")
    optim_alpha: float = key(0.99, help="RMSprop smoothing", within="[0, 1)")
    optim_eps: float = key(1e-5, help="the optimiser's ε", within="[0, inf)")
    grad_clip: float = key(10.0, help="gradient norm clip", within="(0, inf)")
    batch_size: int = key(32, help="episodes per training step", at_least=1)
    buffer_size: int = key(5000, help="replay capacity, in episodes", at_least=1)
    train_steps_per_episode: float = key(
        1.0, help="the paper: one training step per collected episode", within="(0, inf)"
    )
    target_update_episodes: int = key(200, help="target networks copied every this many episodes", at_least=1)
    target_tau: Optional[float] = key(
        None, help="soft updates instead: θ̃ ← τθ + (1 − τ)θ̃ after every training step", within="(0, 1]"
    )
    epsilon_start: float = key(1.0, help="ε-greedy exploration at the start", within="[0, 1]")
    epsilon_finish: float = key(0.05, help="ε after the anneal", within="[0, 1]")
    epsilon_anneal_steps: int = key(50_000, help="env steps of the linear ε anneal", at_least=0)
    obs_dtype: str = key(
        "float16",
        help="how the buffer stores observations and states: float16 | float32",
        choices=("float16", "float32"),
    )
    skip_empty_obs: bool = key(
        False,
        help="the learner's agent input layer skips all-zero observations (padding, dead units): same "
        "function, sums in another order",
    )
    skip_padding: bool = key(
        False,
        help="the learner's agent passes skip the time steps after each episode's end (packed "
        "sequences): same function, sums in another order",
    )
    fused_gru: bool = key(
        False,
        help="the learner unrolls the agent GRU with a compiled CPU kernel (compiled once per machine; "
        "faster, not bit-equal)",
    )
    agent_precision: str = key(
        "float32",
        help="the learner's agent-network passes: float32 | bfloat16 (autocast; faster, not bit-equal)",
        choices=("float32", "bfloat16"),
    )
    l1_reg: float = key(
        0.0,
        help="L1 weight on the agent parameters (Table 1 of the paper; unused by the authors' QMIX)",
        within="[0, inf)",
    )
    qmix: QMIXConfig = key(factory=QMIXConfig, help="mixer=qmix")
    qplex: QPLEXConfig = key(factory=QPLEXConfig, help="mixer=qplex")
    differ: DifferConfig = key(factory=DifferConfig, help="learner=differ")
    maser: MaserConfig = key(factory=MaserConfig, help="learner=maser")
    cem: CEMConfig = key(factory=CEMConfig, help="agent=cem")


@dataclass
class RunConfig:
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = key(1, help="seeds the networks, exploration and every episode", at_least=0)
    t_max: int = key(2_005_000, help="env steps to train for", at_least=1)
    run_dir: Optional[str] = key(None, help="default: runs/<algo>_<env>_<scenario>_s<seed>_<time>")
    test_interval: int = key(10_000, help="env steps between greedy evaluations", at_least=1)
    test_episodes: int = key(32, help="greedy episodes per evaluation", at_least=1)
    log_interval: int = key(10_000, help="env steps between metric records", at_least=1)
    checkpoint_interval: int = key(
        100_000, help="env steps between full checkpoints (0: only the final one)", at_least=0
    )
    torch_threads: int = key(
        1,
        help="torch's threads for this run; 0: one per core the rest of the machine leaves idle when "
        "the run starts, then fixed and saved in config.yaml (differ/threads.py)",
        at_least=0,
    )
    overlap: bool = key(
        False,
        help="collect the next batch while training (two threads; acting lags the learner by one "
        "batch; not bit-equal to false)",
    )
    device: str = key(
        "cpu", help="where the networks and mini-batches live: cpu | cuda | cuda:N | auto (a GPU where torch sees one)"
    )
    progress: Optional[bool] = key(
        None, help="true: a bar | false: silent | null: a bar on a terminal, plain lines elsewhere"
    )
    tensorboard: bool = key(True, help="also write TensorBoard event files (tb/)")
    wandb: bool = key(False, help="also log to Weights & Biases (needs the wandb extra)")
    wandb_project: str = key("differ", help="W&B project")
    wandb_entity: Optional[str] = key(None, help="W&B team or user; null: your default")
    wandb_mode: str = key(
        "offline",
        help="offline: files under RUN_DIR/wandb (`wandb sync` uploads) | online | disabled",
        choices=("offline", "online", "disabled"),
    )


# What a key does to a run, for the keys that may change while it lasts: every other key is part
# of what the run is (changing it would silently mismatch the checkpoint, or fail to load it).
# The one table that the resume check, a sweep's re-run check and the plots' variant labels read:
#   budget     where the run stops
#   report     how it reports and checkpoints, not what it computes
#   compute    where it computes (threads, device): the same algorithm, but the floats round
#              differently, so a change makes the numbers differ from then on
#   optimiser  how the optimiser steps: it may change on resume, but makes a different experiment
KEY_ROLES = {
    "t_max": "budget",
    **dict.fromkeys(
        (
            "checkpoint_interval",
            "test_interval",
            "log_interval",
            "progress",
            "tensorboard",
            "wandb",
            "wandb_project",
            "wandb_entity",
            "wandb_mode",
        ),
        "report",
    ),
    **dict.fromkeys(("torch_threads", "device"), "compute"),
    **dict.fromkeys(("algo.lr", "algo.optim_alpha", "algo.optim_eps", "algo.grad_clip"), "optimiser"),
}
RESUME_KEYS = tuple(KEY_ROLES)  # a resume may change these
# two runs that differ only in these (and run_dir) are the same experiment: a sweep re-run may
# change them (the resumed runs take the new values), and plots do not split variants on them
SAME_EXPERIMENT_KEYS = frozenset({"run_dir"} | {k for k, role in KEY_ROLES.items() if role != "optimiser"})


# Keys of the flat layout (differ 0.1) and where they live now. "@mixer" is the run's own mixer.
# Saved configs in the old layout are read through `migrate`; on the command line an old key
# gets a one-line error naming the new one.
FLAT_KEYS = {
    "mixing_embed_dim": ("@mixer", "embed_dim"),
    "hypernet_hidden": ("@mixer", "hypernet_hidden"),
    "qplex_kernels": ("qplex", "kernels"),
    **{
        k: ("differ", k)
        for k in (
            "selection",
            "eta_start",
            "eta_end",
            "eta_warmup_frac",
            "eta_warmup",
            "beta_start",
            "beta_end",
            "per_alpha",
            "per_eps",
            "g_clamp",
        )
    },
    "maser_alpha": ("maser", "alpha"),
    "maser_lambda": ("maser", "intrinsic_weight"),
    "maser_ind_weight": ("maser", "individual_weight"),
    "maser_train_phi": ("maser", "train_phi"),
    "maser_phi_hidden": ("maser", "phi_hidden"),
}


def migrate(cfg: DictConfig) -> DictConfig:
    """A saved config in the flat layout moved into per-method sections (a no-op otherwise)."""
    algo = cfg.get("algo")
    if not isinstance(algo, DictConfig) or not any(k in algo for k in FLAT_KEYS):
        return cfg
    out = OmegaConf.to_container(cfg, resolve=True)  # an interpolation may name an old flat key
    a = out["algo"]
    for old, (section, key) in FLAT_KEYS.items():
        if old not in a:
            continue
        value = a.pop(old)
        section = a.get("mixer", "qmix") if section == "@mixer" else section
        if section in SECTIONS and key in SECTIONS[section].__dataclass_fields__:
            a.setdefault(section, {}).setdefault(key, value)  # a value already in its section wins
    return OmegaConf.create(out)


def sections_in_use(algo) -> set[str]:
    """The sections a run reads: its mixer's, its learner's and its agent's."""
    return {algo.mixer, algo.learner, algo.get("agent", "rnn")} & set(SECTIONS)


def section(algo: DictConfig, name: str) -> DictConfig:
    """`algo.<name>`, or that section's defaults where the run has none (e.g. `differ verify`
    decomposing a plain QMIX run)."""
    return algo[name] if name in algo else OmegaConf.structured(SECTIONS[name])


def _prune(cfg: DictConfig) -> DictConfig:
    """Drop the sections of methods the run does not use."""
    out = OmegaConf.to_container(cfg, resolve=True)  # nothing may point into a dropped section
    for name in set(SECTIONS) - sections_in_use(cfg.algo):
        out["algo"].pop(name, None)
    pruned = OmegaConf.create(out)
    OmegaConf.set_struct(pruned, True)
    return pruned


def normalise(cfg: DictConfig) -> DictConfig:
    """A saved config in today's layout: migrated, completed with today's defaults, pruned."""
    return _prune(OmegaConf.merge(OmegaConf.structured(RunConfig), migrate(cfg)))


def algo_choices() -> list[str]:
    return sorted(p.stem for p in (PRESETS / "algo").glob("*.yaml"))


def env_choices() -> list[str]:
    """differ's env presets and those of plug-in env families (entry points, differ/envs/registry.py)."""
    from .envs.registry import presets

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
    from .envs.registry import presets

    return OmegaConf.create({"env": presets()[name]})


def _suggest(key: str) -> str:
    """Where a key of the old flat layout lives now, or the nearest valid dotted keys."""
    from .learners import MIXERS

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


def int_option(opts: dict[str, str], key: str, default: int | None = None, minimum: int = 1) -> int | None:
    """A command option (not a config key) that is an integer >= minimum, e.g. `episodes=32`."""
    if key not in opts:
        return default
    try:
        value = int(opts[key])
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got '{opts[key]}'") from None
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


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


def build_config(overrides: dict[str, str], base: Optional[DictConfig] = None) -> DictConfig:
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
    from .learners import MIXERS

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


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(cfg: DictConfig) -> None:
    """Range checks for every value, naming the key; resolves the scenario to its canonical name."""
    from .device import resolve_device
    from .envs.registry import UnknownEnvError, families, resolve_scenario
    from .learners import LEARNERS, MIXERS

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


def describe(cfg: DictConfig) -> str:
    """Every key of a resolved config, one per line: `key: type = value  # help`."""
    lines = []

    def walk(node, schema, prefix):
        types = {f.name: f for f in fields(schema)}
        for name, value in node.items():
            f = types.get(name)
            doc = f.metadata.get("help") if f is not None else None
            sub = f.default_factory if f is not None and is_dataclass(f.default_factory) else None
            if isinstance(value, DictConfig) and sub is not None:
                lines.append(f"{prefix}{name}:  # {doc or ''}".rstrip(" #"))
                walk(value, sub, f"{prefix}{name}.")
                continue
            shown = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
            kind = str(f.type) if f is not None else type(value).__name__
            # as it is written on the command line: null, true/false, plain strings
            shown = (
                {None: "null", True: "true", False: "false"}.get(shown, shown)
                if shown is None or isinstance(shown, bool)
                else shown
            )
            text = f"{prefix}{name}: {kind} = {shown}"
            lines.append(f"{text}  # {doc}" if doc else text)

    walk(cfg, RunConfig, "")
    return "\n".join(lines)
