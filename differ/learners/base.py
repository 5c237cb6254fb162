"""What every learner shares: its networks (live and target), the Q values of a batch
(`values.py`), optimisers by name, one optimiser step, the team TD error, target updates and the
state a checkpoint keeps. A learner adds its losses in `train` (team.py, differ.py, maser.py).

Every learner is built as (agent, mixer, algo_cfg, spec=..., t_max=..., seed=..., device=...,
**sections): the assembly (`differ/assemble.py`) passes each config section the run reads by
name (`cem=` for COMIX's agent, `differ=`, `maser=`), already filled with its defaults.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..acting.controller import make_controller
from ..errors import TrainingDiverged
from ..nets.agent import RNNAgent
from ..nets.cem_agent import CEMAgent
from ..replay.episode_buffer import Batch
from .precision import AgentPrecision
from .targets import hard_update, soft_update
from .values import ContinuousQ, DiscreteQ, Forward, Networks


class Learner:
    # the kinds of action space (EnvSpec.actions.kind) this learner can train on: discrete (an
    # argmax over the available actions) and continuous (CEM, with COMIX's agent)
    action_kinds = frozenset({"discrete", "continuous"})

    def __init__(
        self,
        agent: RNNAgent | CEMAgent,
        mixer: nn.Module,
        cfg,
        spec=None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        cem=None,
        **_,
    ):
        self.cfg = cfg
        self.device = torch.device(device)
        agent, mixer = agent.to(self.device), mixer.to(self.device)
        # bfloat16 autocast around the agent-network passes (an option: faster, not bit-equal)
        self.precision = AgentPrecision(cfg.agent_precision, self.device)
        target_agent = copy.deepcopy(agent).requires_grad_(False)
        target_mixer = copy.deepcopy(mixer).requires_grad_(False)
        self.nets = Networks(agent, mixer, target_agent, target_mixer)
        self.params = list(agent.parameters()) + list(mixer.parameters())
        if agent.action_kind == "continuous":
            self.values = ContinuousQ(self.nets, self.precision, spec, cem, seed, self.device)
        else:
            self.values = DiscreteQ(self.nets, self.precision, cfg, cfg.skip_padding)
        self.build_optimisers()

    # the networks, as one object the value computation shares (values.py)
    agent = property(lambda self: self.nets.agent, lambda self, m: setattr(self.nets, "agent", m))
    mixer = property(lambda self: self.nets.mixer, lambda self, m: setattr(self.nets, "mixer", m))
    target_agent = property(lambda self: self.nets.target_agent, lambda self, m: setattr(self.nets, "target_agent", m))
    target_mixer = property(lambda self: self.nets.target_mixer, lambda self, m: setattr(self.nets, "target_mixer", m))

    # ---- optimisers -------------------------------------------------------------------------
    def build_optimisers(self) -> None:
        """One optimiser: the team TD loss trains agents and mixer together."""
        self.optimiser = self.make_optimiser(self.params)

    def make_optimiser(self, params: list) -> torch.optim.Optimizer:
        if self.cfg.optimiser == "adam":
            return torch.optim.Adam(params, lr=self.cfg.lr, eps=self.cfg.optim_eps)
        return torch.optim.RMSprop(params, lr=self.cfg.lr, alpha=self.cfg.optim_alpha, eps=self.cfg.optim_eps)

    def named_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimiser": self.optimiser}

    def optimisers(self) -> list[torch.optim.Optimizer]:
        return list(self.named_optimisers().values())

    def apply_optimiser_settings(self) -> None:
        """Set lr, alpha and eps from the config on every optimiser. A loaded optimiser state
        carries the values it was saved with; a resumed run that changes them (e.g. a lower
        algo.lr after a divergence) must get the new ones."""
        for opt in self.optimisers():
            for group in opt.param_groups:
                group.update(lr=self.cfg.lr, eps=self.cfg.optim_eps)
                if "alpha" in group:
                    group["alpha"] = self.cfg.optim_alpha

    @staticmethod
    def step(optimiser, loss: torch.Tensor, params: list, clip: float) -> float:
        optimiser.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        grad_norm = nn.utils.clip_grad_norm_(params, clip).item()
        if not math.isfinite(grad_norm):  # stop before the step writes non-finite weights
            raise TrainingDiverged(f"the gradient norm became {grad_norm} (loss {loss.item():.4g})")
        optimiser.step()
        return grad_norm

    # ---- acting -------------------------------------------------------------------------------
    def controller(self, agent=None):
        """What acts with this learner's agent network (or `agent`, a copy of it) in the runner."""
        agent = self.agent if agent is None else agent
        if isinstance(self.values, ContinuousQ):
            low, high, cem = self.values.low.cpu().numpy(), self.values.high.cpu().numpy(), self.values.cem
            return make_controller(agent, low, high, cem, cem.action_noise)
        return make_controller(agent)

    @property
    def batch_obs_dtype(self) -> torch.dtype:
        """What the trainer samples the observations as (bfloat16 where only the agent passes read them)."""
        return self.precision.obs_dtype

    # ---- the losses' common parts ---------------------------------------------------------
    def forward(self, batch: Batch) -> Forward:
        fwd = self.values.forward(batch)
        fwd.reward = self.reward_hook(fwd, batch)
        return fwd

    def reward_hook(self, fwd: Forward, batch: Batch) -> torch.Tensor:
        """The reward every target of this step uses; a learner that shapes the reward (MASER)
        overrides this, once, so the team and the individual targets see the same reward."""
        return batch.reward

    def team_td(self, fwd: Forward, batch: Batch, agent_qs: torch.Tensor):
        """Q_tot, its target y = R + γ(1 − terminated)·Q̃_tot, and δ = Q_tot − y (masked)."""
        q_tot = self.mixer(fwd.mixer_in.with_qs(agent_qs))
        y = fwd.reward + self.cfg.gamma * (1 - batch.terminated) * fwd.target_tot
        delta = (q_tot - y) * batch.mask
        return q_tot, y, delta

    def l1_penalty(self) -> torch.Tensor | float:
        """Table 1's L1 weight on the agent parameters; off (0) by default, see docs/method.md §5."""
        if not self.cfg.l1_reg:
            return 0.0
        return self.cfg.l1_reg * sum(p.abs().sum() for p in self.agent.parameters())

    @staticmethod
    @torch.no_grad()
    def team_stats(loss, delta, q_tot, y, mask) -> dict[str, float]:
        n = mask.sum()
        return {
            "loss_td": loss.item(),
            "td_error_abs": (delta.abs().sum() / n).item(),
            "q_taken_mean": ((q_tot * mask).sum() / n).item(),
            "target_mean": ((y * mask).sum() / n).item(),
        }

    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        raise NotImplementedError

    # ---- target networks ------------------------------------------------------------------
    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.agent, self.target_agent), (self.mixer, self.target_mixer)]

    def update_targets(self) -> None:
        hard_update(self.target_pairs())

    def soft_update_targets(self, tau: float) -> None:
        """COMIX updates its targets this way after every training step."""
        soft_update(self.target_pairs(), tau)

    # ---- checkpointing: networks and optimisers by name, one generic path -------------------
    def networks(self) -> dict[str, nn.Module]:
        """Every module whose weights a checkpoint keeps, by name (the checkpoint's keys)."""
        return {
            "agent": self.agent,
            "mixer": self.mixer,
            "target_agent": self.target_agent,
            "target_mixer": self.target_mixer,
        }

    def extra_state(self) -> dict:
        """Anything else the rest of the run depends on (a learner's own random generator, ...)."""
        return self.values.state_dict()

    def load_extra_state(self, sd: dict) -> None:
        self.values.load_state_dict(sd)

    def state_dict(self) -> dict:
        return {
            **{k: m.state_dict() for k, m in self.networks().items()},
            **{k: o.state_dict() for k, o in self.named_optimisers().items()},
            **self.extra_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        for k, m in self.networks().items():
            m.load_state_dict(sd[k])
        for k, o in self.named_optimisers().items():
            o.load_state_dict(sd[k])
        self.load_extra_state(sd)
        self.apply_optimiser_settings()

    def all_finite(self) -> bool:
        """Whether every network weight and optimiser statistic is finite (checked before a save)."""
        tensors = [t for m in self.networks().values() for t in m.state_dict().values()]
        for opt in self.optimisers():
            tensors += [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
        return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())
