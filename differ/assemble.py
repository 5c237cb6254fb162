"""One way to assemble a team: the environments, the agent network, the mixer and the learner a
run's config describes (`assemble`), and a saved run's team with its checkpoint's weights
(`load_team`). Training, evaluate, videos and verify build through here; `differ.Policy` loads
only the agent network, from the record every checkpoint keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .config import build_config, section, sections_in_use
from .device import resolve_device
from .envs.registry import make_env
from .errors import ConfigError
from .learners import LEARNERS, MIXERS
from .nets import AGENTS, fused_gru
from .nets.mixers import build_mixer
from .store import checkpoint as ckpt


def check_action_space(cfg: DictConfig, spec) -> None:
    """One line, before anything is sized or built, when the algorithm cannot act in the env."""
    a = cfg.algo
    kinds = set(LEARNERS[a.learner].action_kinds) & set(MIXERS[a.mixer].action_kinds) & {AGENTS[a.agent].action_kind}
    if spec.actions.kind not in kinds:
        raise ConfigError(
            f"algo={a.name} acts in {', '.join(sorted(kinds)) or 'no'} action spaces, "
            f"and env={cfg.env.name} {cfg.env.scenario} has {spec.actions.kind} actions"
        )


def make_envs(cfg: DictConfig, **options):
    """The training envs, and the test envs (the same object unless env.test_num_envs is set);
    `options` are added to env.options (e.g. render_mode for videos)."""
    e = cfg.env
    scale, opts = e.get("reward_scale", 1.0), {**e.options, **options}
    env = make_env(e.name, e.scenario, e.num_envs, e.time_limit, opts, scale)
    test_n = e.get("test_num_envs") or None
    test_env = make_env(e.name, e.scenario, test_n, e.time_limit, opts, scale) if test_n else env
    return env, test_env


def assemble(cfg: DictConfig, spec, dtype: torch.dtype | None = None):
    """The agent network, the mixer and the learner of `cfg.algo`, seeded by `cfg.seed` (in
    `dtype` where given: `differ verify` checks in float64)."""
    check_action_space(cfg, spec)
    a = cfg.algo
    device = resolve_device(cfg.device)
    if a.fused_gru:
        if device.type != "cpu":
            raise ConfigError(
                f"algo.fused_gru=true is a CPU kernel and this run trains on {device} "
                f"(the GPU's own GRU is already one fused call): leave algo.fused_gru out"
            )
        fused_gru.kernel()  # compiled (or loaded) now: a machine that cannot build it says so before the run starts
    # the rnn agent's speed options (the config allows them for it only)
    options = {"skip_empty_obs": a.skip_empty_obs, "fused_gru": a.fused_gru} if a.agent == "rnn" else {}
    torch.manual_seed(cfg.seed)
    agent = AGENTS[a.agent](spec.obs_dim, spec.n_actions, spec.n_agents, a.agent_hidden, **options)
    mixer = build_mixer(a.mixer, spec.n_agents, spec.state_dim, spec.n_actions, a)
    if dtype is not None:
        agent, mixer = agent.to(dtype), mixer.to(dtype)
    # the learner's and the agent's settings, each section by name (the mixer's went to the mixer)
    sections = {name: section(a, name) for name in sections_in_use(a) if name not in MIXERS}
    return LEARNERS[a.learner](agent, mixer, a, spec=spec, t_max=cfg.t_max, seed=cfg.seed, device=device, **sections)


@dataclass
class Team:
    """A saved run's team: its checkpoint, config, learner (with the checkpoint's weights) and envs."""

    checkpoint: Path
    payload: dict
    cfg: DictConfig
    learner: object
    env: object
    test_env: object

    @property
    def t_env(self) -> int:
        return self.payload["counters"]["t_env"]

    def close(self) -> None:
        for e in {id(self.env): self.env, id(self.test_env): self.test_env}.values():
            e.close()


def load_run(path) -> tuple[Path, dict, DictConfig]:
    """(checkpoint path, payload, config) of a run directory's newest readable checkpoint, or of
    a checkpoint file."""
    ckpt_path, payload = ckpt.load_run_or_file(path)
    # acting alone: on the CPU, wherever the run trained (a GPU run evaluates on a laptop too)
    return ckpt_path, payload, build_config({"device": "cpu"}, base=OmegaConf.create(payload["config"]))


def load_team(path, num_envs: int | None = None, **env_options) -> Team:
    """A run directory's (or checkpoint file's) team, built as training built it, then loaded;
    with `num_envs`, one set of that many envs for training and tests (videos take 1)."""
    return team_of(*load_run(path), num_envs=num_envs, **env_options)


def team_of(ckpt_path: Path, payload: dict, cfg: DictConfig, num_envs: int | None = None, **env_options) -> Team:
    """The team of a loaded checkpoint (`load_run`'s three values)."""
    if num_envs is not None:
        cfg.env.num_envs, cfg.env.test_num_envs = num_envs, None
    env, test_env = make_envs(cfg, **env_options)
    learner = assemble(cfg, env.spec)
    learner.load_state_dict(payload["learner"])
    return Team(ckpt_path, payload, cfg, learner, env, test_env)
