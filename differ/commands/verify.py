"""`differ verify`: is DIFFER's decomposition exact for a mixer?

On a real batch collected with a random policy (continuous actions: an untrained COMIX agent with
its exploration noise), in float64, it checks the two identities the
method rests on (docs/method.md §3-4):

- Eq. 1: the individual losses reproduce the team gradient on the agent parameters,
  Σ_i ∂(m·δ_i²)/∂θ = ∂(m·δ²)/∂θ, with δ_i = Q_i − y_i from the decomposer;
- the -divide variant: its agent gradient (through the real training step) equals the base
  method's times Σm / Σq_m, where in the base method the Q_i of dead agents enter the mixer
  without gradient (the individual mask drops them after the step of death).

Both hold for any mixer whose Q_tot at (b, t) depends on the agent networks only through the
chosen Q_i of that step. A mixer that mixes across steps or episodes, or reads another input that
carries the agents' gradient, fails them: that is what this command is for.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..acting.controller import make_controller
from ..acting.runner import Runner
from ..assemble import assemble, check_action_space
from ..config import AlgoConfig, ConfigError, build_config
from ..envs.base import EnvSpec
from ..envs.registry import make_env
from ..learners import LEARNERS, DifferLearner, Learner
from ..learners.decomposer import decompose_step
from ..nets.agent import RNNAgent
from ..nets.cem_agent import CEMAgent
from ..replay.episode_buffer import Batch, EpisodeBuffer

TOLERANCE = 1e-6


def random_batch(
    env_name: str,
    scenario: str,
    episodes: int = 8,
    seed: int = 0,
    time_limit=None,
    options=None,
    check=None,
    algo: DictConfig | None = None,
) -> tuple[EnvSpec, Batch]:
    """A float64 batch of real episodes played by a uniformly random policy: padding, terminal
    steps and, where the env has them, deaths. `check(spec)` runs before anything is played."""
    env = make_env(env_name, scenario, episodes, time_limit, options)
    spec = env.spec
    if check is not None:
        try:
            check(spec)
        except Exception:
            env.close()
            raise
    if spec.actions.kind == "continuous":
        cem = OmegaConf.merge(OmegaConf.structured(AlgoConfig), algo or {}).cem
        low, high = spec.actions.bounds()
        controller = make_controller(
            CEMAgent(spec.obs_dim, spec.n_actions, spec.n_agents), low, high, cem, cem.action_noise
        )
    else:
        controller = make_controller(RNNAgent(spec.obs_dim, spec.n_actions, spec.n_agents))
    with torch.no_grad():
        eps = Runner(env, controller).run(list(range(seed, seed + episodes)), 1.0, np.random.default_rng(seed))
    env.close()
    buf = EpisodeBuffer(spec, episodes, "float32")
    for e in eps:
        buf.add_episode(e)
    batch = buf.collate(list(buf.episodes))
    for k, v in vars(batch).items():
        if v.dtype == torch.float32:
            setattr(batch, k, v.double())
    return spec, batch


def learner_for(cfg: DictConfig, spec: EnvSpec, learner: str, selection: str = "all"):
    """A float64 learner with the algorithm's mixer, as `learner` (team | differ), no clipping,
    assembled as training assembles it (without the speed options, which are float32 kernels)."""
    over = {"learner": learner, "differ": {"selection": selection}, "grad_clip": 1e9}
    speed = {"fused_gru": False, "skip_padding": False, "skip_empty_obs": False, "agent_precision": "float32"}
    # on the full schema: the run's own algo config may lack the differ section (a plain QMIX run)
    algo = OmegaConf.merge(OmegaConf.structured(AlgoConfig), cfg.algo, over, speed)
    return assemble(OmegaConf.merge(cfg, {"algo": algo, "t_max": 1000, "device": "cpu"}), spec, torch.float64)


def _grads(loss: torch.Tensor, params: list) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp(min=1e-300)).item()


def eq1_error(L: Learner, b: Batch) -> float:
    """Relative error between Σ_i ∂L_i/∂θ and ∂L_tot/∂θ on the agent parameters (team mask on
    both sides)."""
    params = list(L.agent.parameters())
    fwd = L.forward(b)
    dec = decompose_step(L.mixer, fwd, b, L.cfg.gamma)
    n = b.mask.sum()
    _, _, delta = L.team_td(fwd, b, fwd.chosen)
    team = _grads((delta**2).sum() / n, params)
    ind = _grads((b.mask.unsqueeze(-1) * (fwd.chosen - dec.y_i) ** 2).sum() / n, params)
    return _rel(ind, team)


def divide_error(base: Learner, divide: DifferLearner, b: Batch) -> float:
    """Relative error between the -divide agent gradient (one real training step) and the base
    method's agent gradient times Σm / Σq_m (dead agents' Q_i without gradient in the base)."""
    params = list(base.agent.parameters())
    divide.values.load_state_dict(base.values.state_dict())  # the same CEM draws for both targets (COMIX)
    fwd = base.forward(b)
    alive = b.alive[:, :-1]
    q_in = torch.where(alive, fwd.chosen, fwd.chosen.detach())
    _, _, delta = base.team_td(fwd, b, q_in)
    n_team = b.mask.sum()
    n_ind = (b.mask.unsqueeze(-1) * alive.to(b.mask.dtype)).sum()
    expected = _grads((delta**2).sum() / n_team, params) * n_team / n_ind
    divide.train(b)  # the real training step; its gradients stay in .grad
    got = torch.cat([p.grad.reshape(-1) for p in divide.agent.parameters()])
    return _rel(got, expected)


def verify(overrides: dict[str, str], episodes: int = 8) -> dict:
    """Run both checks for the mixer of `algo=` on `env=` / `env.scenario=`; returns a report."""
    cfg = build_config(overrides)
    learner = LEARNERS[cfg.algo.learner]
    if not getattr(learner, "has_mixer", True):
        title = getattr(learner, "title", cfg.algo.learner)
        raise ConfigError(f"algo={cfg.algo.name}: {title} has no mixer to decompose (differ verify checks a mixer)")
    e = cfg.env
    spec, b = random_batch(
        e.name,
        e.scenario,
        episodes,
        cfg.seed,
        e.time_limit,
        e.options,
        check=lambda spec: check_action_space(cfg, spec),
        algo=cfg.algo,
    )
    base = learner_for(cfg, spec, "team")
    divide = learner_for(cfg, spec, "differ", "all")
    divide.agent.load_state_dict(base.agent.state_dict())
    divide.mixer.load_state_dict(base.mixer.state_dict())
    for L in (base, divide):
        L.update_targets()
    report = {
        "mixer": cfg.algo.mixer,
        "env": e.name,
        "scenario": e.scenario,
        "episodes": episodes,
        "valid_steps": int(b.mask.sum()),
        # inside the episodes only: the padding after an episode's end is "not alive" as well
        "deaths": int((b.alive[:, :-1] & ~b.alive[:, 1:] & b.mask.bool()[..., None]).sum()),
        "eq1_rel_error": eq1_error(base, b),
        "divide_rel_error": divide_error(base, divide, b),
        "tolerance": TOLERANCE,
    }
    report["exact"] = report["eq1_rel_error"] <= TOLERANCE and report["divide_rel_error"] <= TOLERANCE
    return report


def format_report(r: dict) -> str:
    ok = lambda err: "ok" if err <= r["tolerance"] else "FAILS"  # noqa: E731
    return "\n".join(
        [
            f"differ verify: mixer {r['mixer']} on {r['env']} {r['scenario']} ({r['episodes']} random-policy "
            f"episodes, float64, {r['valid_steps']} valid steps, {r['deaths']} agent deaths)",
            f"  Eq. 1: sum_i dL_i/dtheta vs dL_tot/dtheta (agent parameters)   relative error "
            f"{r['eq1_rel_error']:.2e}  {ok(r['eq1_rel_error'])}",
            f"  -divide agent gradient vs the base method's x sum(m)/sum(q_m)  relative error "
            f"{r['divide_rel_error']:.2e}  {ok(r['divide_rel_error'])}",
            f"DIFFER is {'exact' if r['exact'] else 'NOT exact'} for mixer {r['mixer']} "
            f"(tolerance {r['tolerance']:g}).",
        ]
    )
