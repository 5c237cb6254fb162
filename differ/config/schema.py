"""The run configuration's schema: every key with its type, default, help and checks (`key`),
the per-method sections, and the table of keys a run may change while it lasts (`KEY_ROLES`)."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

PRESETS = Path(__file__).resolve().parent.parent / "presets"


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
class MaserConfig:  # algo.maser (learner=maser), the paper's baseline; differ/learners/maser.py
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


@dataclass
class ComaConfig:  # algo.coma (learner=coma): the actor-critic of Foerster et al. 2018; differ/learners/coma.py
    critic_lr: float = key(5e-4, help="the critic's learning rate (the actor's is algo.lr)", within="(0, inf)")
    td_lambda: float = key(0.8, help="λ of the critic's TD(λ) targets", within="[0, 1]")
    critic_hidden: int = key(128, help="width of the critic's two hidden layers", at_least=1)
    critic_train_mode: str = key(
        "seq",
        help="seq: one critic update per time step, last step first (PyMARL) | batch: one update on all steps",
        choices=("seq", "batch"),
    )


SECTIONS = {
    "qmix": QMIXConfig,
    "qplex": QPLEXConfig,
    "differ": DifferConfig,
    "maser": MaserConfig,
    "cem": CEMConfig,
    "coma": ComaConfig,
}


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
    optim_eps: float = key(1e-5, help="the optimiser's ε (0 divides by zero)", within="(0, inf)")
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
    coma: ComaConfig = key(factory=ComaConfig, help="learner=coma")


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
        "the run starts, then fixed and saved in config.yaml (differ/run/threads.py)",
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
