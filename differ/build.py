"""Factories: the environments and the learner a run's config describes."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .device import resolve_device
from .envs.registry import make_env
from .errors import ConfigError
from .learners import LEARNERS, MIXERS
from .nets import AGENTS, fused_gru
from .nets.mixers import build_mixer


def check_action_space(cfg: DictConfig, spec) -> None:
    """One line, before anything is sized or built, when the algorithm cannot act in the env."""
    a = cfg.algo
    kinds = set(LEARNERS[a.learner].action_kinds) & set(MIXERS[a.mixer].action_kinds) & {AGENTS[a.agent].action_kind}
    if spec.actions.kind not in kinds:
        raise ConfigError(
            f"algo={a.name} acts in {', '.join(sorted(kinds)) or 'no'} action spaces, "
            f"and env={cfg.env.name} {cfg.env.scenario} has {spec.actions.kind} actions"
        )


def trained_learner(cfg: DictConfig, spec, payload: dict):
    """A saved run's learner with its checkpoint's weights (`evaluate`, videos): built as
    training built it, then loaded."""
    learner = build_learner(cfg, spec)
    learner.load_state_dict(payload["learner"])
    return learner


def build_learner(cfg: DictConfig, spec):
    """The agent network, the mixer and the learner of `cfg.algo`, seeded by `cfg.seed`."""
    check_action_space(cfg, spec)
    learner, a = LEARNERS[cfg.algo.learner], cfg.algo
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
    mixer = build_mixer(cfg.algo.mixer, spec.n_agents, spec.state_dim, spec.n_actions, cfg.algo)
    return learner(agent, mixer, cfg.algo, spec=spec, t_max=cfg.t_max, seed=cfg.seed, device=device)


def make_envs(cfg: DictConfig):
    """The training envs, and the test envs (the same object unless env.test_num_envs is set)."""
    e = cfg.env
    scale = e.get("reward_scale", 1.0)
    env = make_env(e.name, e.scenario, e.num_envs, e.time_limit, e.options, scale)
    test_n = e.get("test_num_envs") or None
    test_env = make_env(e.name, e.scenario, test_n, e.time_limit, e.options, scale) if test_n else env
    return env, test_env
