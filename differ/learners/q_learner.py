"""Team TD learning for value factorisation (VDN, QMIX, ...): docs/method.md §2.

One forward pass unrolls the live and target agent networks over whole episodes; the mixer turns
the chosen Q_i into Q_tot; the double-Q target picks a*_i over AVAILABLE actions with the live
network and evaluates it with the target networks. With continuous actions (COMIX's agent) the
target networks are unrolled on the taken actions and a*_i at t+1 is the target agent's CEM argmax
from that recurrent state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..config import section
from ..controller import make_controller
from ..errors import TrainingDiverged
from ..nets.agent import RNNAgent
from ..nets.cem import cem_argmax
from ..nets.cem_agent import CEMAgent
from ..nets.mixers import MixerInput
from ..replay.episode_buffer import Batch


@dataclass
class Forward:
    """Everything one training step derives from a batch, shared by every loss built on it."""

    chosen: torch.Tensor  # [B, T, N] Q_i of the taken actions (with gradient)
    target_q: torch.Tensor  # [B, T, N] target Q_i at t+1 of a*_i (no gradient)
    target_tot: torch.Tensor  # [B, T] target Q_tot at t+1 (no gradient)
    q_all: torch.Tensor | None  # [B, T+1, N, A] live Q_i of every action (discrete; with gradient)
    target_q_all: torch.Tensor | None  # [B, T+1, N, A] target Q_i of every action (discrete; no gradient)
    mixer_in: MixerInput  # the live mixer's input at steps 0..T-1, qs = chosen
    reward: torch.Tensor  # [B, T] the reward both the team and the individual targets use
    extras: dict = field(default_factory=dict)  # what a learner's reward hook wants to keep


def masked_max(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """max over the available actions [..., A] -> [...]; 0 where none is available (padding)."""
    best = q.masked_fill(~avail, -torch.inf).max(-1).values
    return torch.where(avail.any(-1), best, torch.zeros_like(best))


def greedy_actions(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """argmax over the available actions [..., A] -> [...] (no gradient)."""
    return q.detach().masked_fill(~avail, -torch.inf).argmax(-1)


def mixer_input(
    mixer, qs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor, q_all: torch.Tensor, avail: torch.Tensor
) -> MixerInput:
    """The input `mixer` reads: qs and the state, plus the one-hot of `actions` and the max of
    `q_all` over `avail` (detached) only where the mixer asks for them."""
    x = MixerInput(qs, state)
    if "actions" in mixer.reads:
        x.actions = F.one_hot(actions, q_all.shape[-1])
    if "max_qs" in mixer.reads:
        x.max_qs = masked_max(q_all.detach(), avail)
    return x


def last_actions(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Actions taken before each step: [B, T, N] -> [B, T+1, N], `n_actions` meaning none."""
    none = torch.full_like(actions[:, :1], n_actions)
    return torch.cat([none, actions], dim=1)


class QLearner:
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
        **_,
    ):
        self.cfg = cfg
        self.device = torch.device(device)
        self.agent, self.mixer = agent.to(self.device), mixer.to(self.device)
        # bfloat16 autocast around the agent-network passes (an option: faster, not bit-equal)
        self.agent_bf16 = cfg.get("agent_precision", "float32") == "bfloat16"
        # unroll the agent networks on the steps inside each episode only (an option: faster, not bit-equal)
        self.skip_padding = bool(cfg.get("skip_padding", False))
        self.target_agent = copy.deepcopy(agent).requires_grad_(False)
        self.target_mixer = copy.deepcopy(mixer).requires_grad_(False)
        self.params = list(agent.parameters()) + list(mixer.parameters())
        self.continuous = isinstance(agent, CEMAgent)
        if self.continuous:
            low, high = spec.actions.bounds()
            self.low, self.high = torch.from_numpy(low).to(self.device), torch.from_numpy(high).to(self.device)
            self.cem = section(cfg, "cem")
            self.cem_generator = torch.Generator().manual_seed(seed + 7919)  # target CEM, checkpointed
        self.build_optimisers()

    def build_optimisers(self) -> None:
        """One optimiser: the team TD loss trains agents and mixer together."""
        self.optimiser = self.make_optimiser(self.params)

    def apply_optimiser_settings(self) -> None:
        """Set lr, alpha and eps from the config on every optimiser. A loaded optimiser state
        carries the values it was saved with; a resumed run that changes them (e.g. a lower
        algo.lr after a divergence) must get the new ones."""
        for opt in self.optimisers():
            for group in opt.param_groups:
                group.update(lr=self.cfg.lr, eps=self.cfg.optim_eps)
                if "alpha" in group:
                    group["alpha"] = self.cfg.optim_alpha

    def make_optimiser(self, params: list) -> torch.optim.Optimizer:
        if self.cfg.get("optimiser", "rmsprop") == "adam":
            return torch.optim.Adam(params, lr=self.cfg.lr, eps=self.cfg.optim_eps)
        return torch.optim.RMSprop(params, lr=self.cfg.lr, alpha=self.cfg.optim_alpha, eps=self.cfg.optim_eps)

    def controller(self, agent=None):
        """What acts with this learner's agent network (or `agent`, a copy of it) in the runner."""
        agent = self.agent if agent is None else agent
        if self.continuous:
            return make_controller(
                agent, self.low.cpu().numpy(), self.high.cpu().numpy(), self.cem, self.cem.action_noise
            )
        return make_controller(agent)

    # ---- the shared forward pass -------------------------------------------------------
    def agent_precision(self):
        """The context the agent-network passes run in: bfloat16 autocast where the option asks."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.agent_bf16)

    @property
    def batch_obs_dtype(self) -> torch.dtype:
        """What the trainer samples the observations as: bfloat16 when only the agent passes read
        them and run in bfloat16 (one cast in the buffer, no float32 copy), else float32."""
        return torch.bfloat16 if self.agent_bf16 else torch.float32

    def agent_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """The observations as the agent passes read them: in bfloat16 where the option asks, cast
        once per step here (autocast would cast them anew for the live and the target pass, and at
        the largest shapes that copy costs as much as a matmul)."""
        return obs.to(torch.bfloat16) if self.agent_bf16 else obs

    def unroll(self, agent, obs: torch.Tensor, last_action: torch.Tensor, lengths=None) -> torch.Tensor:
        """Q_i of every action over whole episodes, in float32 whatever the passes ran in (the
        mixer and the losses stay in full precision). With lengths (algo.skip_padding) only the
        steps inside each episode are computed."""
        with self.agent_precision():
            q, _ = agent(obs, last_action) if lengths is None else agent(obs, last_action, lengths=lengths)
        return q.float() if self.agent_bf16 else q

    def hiddens(self, agent, obs: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        with self.agent_precision():
            h, _ = agent.hiddens(obs, last_action)
        return h.float() if self.agent_bf16 else h

    def forward(self, batch: Batch) -> Forward:
        if self.continuous:
            return self.forward_continuous(batch)
        la = last_actions(batch.actions, self.agent.n_actions)
        obs = self.agent_obs(batch.obs)
        # the observations of an episode of L steps are L + 1: the last one feeds the targets
        lengths = batch.mask.sum(1).long() + 1 if self.skip_padding else None
        q = self.unroll(self.agent, obs, la, lengths)
        chosen = q[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        mixer_in = mixer_input(self.mixer, chosen, batch.state[:, :-1], batch.actions, q[:, :-1], batch.avail[:, :-1])
        with torch.no_grad():
            tq_all = self.unroll(self.target_agent, obs, la, lengths)
            tq = tq_all[:, 1:]
            avail_next = batch.avail[:, 1:]
            if self.cfg.double_q:
                a_star = greedy_actions(q[:, 1:], avail_next)
                target_q = tq.gather(-1, a_star.unsqueeze(-1)).squeeze(-1)
            else:
                a_star = greedy_actions(tq, avail_next)
                target_q = masked_max(tq, avail_next)
            target_in = mixer_input(self.target_mixer, target_q, batch.state[:, 1:], a_star, tq, avail_next)
            target_tot = self.target_mixer(target_in)
        fwd = Forward(chosen, target_q, target_tot, q, tq_all, mixer_in, batch.reward)
        fwd.reward = self.reward_hook(fwd, batch)
        return fwd

    def forward_continuous(self, batch: Batch) -> Forward:
        """COMIX: Q_i(τ_i, a_i) of the taken actions; the target networks unrolled on the taken
        actions, a*_i at t+1 the target agent's CEM argmax from that state."""
        la = torch.cat([torch.zeros_like(batch.actions[:, :1]), batch.actions], dim=1)  # a_{t-1}, 0 at t = 0
        obs = self.agent_obs(batch.obs)
        h = self.hiddens(self.agent, obs, la)
        chosen = self.agent.q(h[:, :-1], batch.actions)
        mixer_in = MixerInput(chosen, batch.state[:, :-1])
        with torch.no_grad():
            th = self.hiddens(self.target_agent, obs, la)
            th = th[:, 1:]  # [B, T, N, H]
            a_star = self.target_cem(th, batch.mask > 0)
            target_q = self.target_agent.q(th, a_star)
            target_tot = self.target_mixer(MixerInput(target_q, batch.state[:, 1:]))
        fwd = Forward(chosen, target_q, target_tot, None, None, mixer_in, batch.reward)
        fwd.reward = self.reward_hook(fwd, batch)
        return fwd

    CEM_CHUNK = 8192  # (b, t, i) triples per CEM call: bounds the [samples, chunk, head] memory

    def target_cem(self, th: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """argmax_a of the target agent's Q_i(h, a) by CEM at the steps inside episodes (`valid`
        [B, T]; padding gets action 0, which every loss masks): [B, T, N, H] -> [B, T, N, A].
        The head's recurrent part is projected once; the (b, t, i) go through CEM in chunks."""
        B, T, N, H = th.shape
        A = self.low.shape[-1]
        rows = valid.unsqueeze(-1).expand(B, T, N).reshape(-1)
        z = self.target_agent.project(th).reshape(B * T * N, -1)[rows]
        low = self.low.to(th.dtype).expand(B, T, N, A).reshape(-1, A)[rows]
        high = self.high.to(th.dtype).expand(B, T, N, A).reshape(-1, A)[rows]
        c, out = self.cem, []
        for s in range(0, z.shape[0], self.CEM_CHUNK):
            zc = z[s : s + self.CEM_CHUNK]
            out.append(
                cem_argmax(
                    lambda cand, zc=zc: self.target_agent.q_projected(zc, cand),
                    (zc.shape[0],),
                    low[s : s + self.CEM_CHUNK],
                    high[s : s + self.CEM_CHUNK],
                    self.cem_generator,
                    c.samples,
                    c.elites,
                    c.iterations,
                )
            )
        a = torch.zeros(B * T * N, A, dtype=th.dtype, device=th.device)
        if out:
            a[rows] = torch.cat(out)
        return a.view(B, T, N, A)

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
    def step(optimiser, loss: torch.Tensor, params: list, clip: float) -> float:
        optimiser.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        grad_norm = nn.utils.clip_grad_norm_(params, clip).item()
        if not math.isfinite(grad_norm):  # stop before the step writes non-finite weights
            raise TrainingDiverged(f"the gradient norm became {grad_norm} (loss {loss.item():.4g})")
        optimiser.step()
        return grad_norm

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

    # ---- one training step --------------------------------------------------------------
    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        fwd = self.forward(batch)
        q_tot, y, delta = self.team_td(fwd, batch, fwd.chosen)
        loss = (delta**2).sum() / batch.mask.sum()
        grad_norm = self.step(self.optimiser, loss + self.l1_penalty(), self.params, self.cfg.grad_clip)
        return {**self.team_stats(loss, delta, q_tot, y, batch.mask), "grad_norm": grad_norm}

    def update_targets(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    @torch.no_grad()
    def soft_update_targets(self, tau: float) -> None:
        """θ̃ ← τ·θ + (1 − τ)·θ̃ (COMIX updates its targets this way after every training step)."""
        for live, target in ((self.agent, self.target_agent), (self.mixer, self.target_mixer)):
            for p, tp in zip(live.parameters(), target.parameters()):
                tp.lerp_(p, tau)

    # ---- checkpointing: networks and optimisers by name, one generic path -------------------
    def networks(self) -> dict[str, nn.Module]:
        """Every module whose weights a checkpoint keeps, by name (the checkpoint's keys)."""
        return {
            "agent": self.agent,
            "mixer": self.mixer,
            "target_agent": self.target_agent,
            "target_mixer": self.target_mixer,
        }

    def named_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimiser": self.optimiser}

    def optimisers(self) -> list[torch.optim.Optimizer]:
        return list(self.named_optimisers().values())

    def extra_state(self) -> dict:
        """Anything else the rest of the run depends on (a learner's own random generator, ...)."""
        return {"cem_generator": self.cem_generator.get_state()} if self.continuous else {}

    def load_extra_state(self, sd: dict) -> None:
        if self.continuous:
            self.cem_generator.set_state(sd["cem_generator"])

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
