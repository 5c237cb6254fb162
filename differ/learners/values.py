"""What one training step derives from a batch before any loss: the Q values of the taken actions,
the targets at t+1 and the mixer's inputs (`Forward`), for each kind of action.

  DiscreteQ    the DRQN agent: Q_i of every action; the double-Q target picks a*_i over the
               AVAILABLE actions with the live network and evaluates it with the target networks
  ContinuousQ  COMIX's agent: Q_i(τ_i, a_i) of the taken actions; the target networks are
               unrolled on the taken actions and a*_i at t+1 is the target agent's CEM argmax
               from that recurrent state
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..nets.cem import cem_argmax
from ..nets.mixers import MixerInput
from ..replay.episode_buffer import Batch
from .precision import AgentPrecision


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


@dataclass
class Networks:
    """The live and target networks one learner trains."""

    agent: nn.Module
    mixer: nn.Module
    target_agent: nn.Module
    target_mixer: nn.Module


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


class DiscreteQ:
    kind = "discrete"

    def __init__(self, nets: Networks, precision: AgentPrecision, cfg, skip_padding: bool):
        self.nets, self.precision, self.cfg = nets, precision, cfg  # cfg.double_q
        # unroll the agent networks on the steps inside each episode only (an option: faster, not bit-equal)
        self.skip_padding = skip_padding

    def forward(self, batch: Batch) -> Forward:
        n, p = self.nets, self.precision
        la = last_actions(batch.actions, n.agent.n_actions)
        obs = p.obs(batch.obs)
        # the observations of an episode of L steps are L + 1: the last one feeds the targets
        lengths = batch.mask.sum(1).long() + 1 if self.skip_padding else None
        q = p.unroll(n.agent, obs, la, lengths)
        chosen = q[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        mixer_in = mixer_input(n.mixer, chosen, batch.state[:, :-1], batch.actions, q[:, :-1], batch.avail[:, :-1])
        with torch.no_grad():
            tq_all = p.unroll(n.target_agent, obs, la, lengths)
            tq = tq_all[:, 1:]
            avail_next = batch.avail[:, 1:]
            if self.cfg.double_q:
                a_star = greedy_actions(q[:, 1:], avail_next)
                target_q = tq.gather(-1, a_star.unsqueeze(-1)).squeeze(-1)
            else:
                a_star = greedy_actions(tq, avail_next)
                target_q = masked_max(tq, avail_next)
            target_in = mixer_input(n.target_mixer, target_q, batch.state[:, 1:], a_star, tq, avail_next)
            target_tot = n.target_mixer(target_in)
        return Forward(chosen, target_q, target_tot, q, tq_all, mixer_in, batch.reward)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, sd: dict) -> None:
        pass


class ContinuousQ:
    kind = "continuous"
    CEM_CHUNK = 8192  # (b, t, i) triples per CEM call: bounds the [samples, chunk, head] memory

    def __init__(self, nets: Networks, precision: AgentPrecision, spec, cem, seed: int, device: torch.device):
        self.nets, self.precision, self.cem = nets, precision, cem
        low, high = spec.actions.bounds()
        self.low, self.high = torch.from_numpy(low).to(device), torch.from_numpy(high).to(device)
        self.cem_generator = torch.Generator().manual_seed(seed + 7919)  # target CEM, checkpointed

    def forward(self, batch: Batch) -> Forward:
        n, p = self.nets, self.precision
        la = torch.cat([torch.zeros_like(batch.actions[:, :1]), batch.actions], dim=1)  # a_{t-1}, 0 at t = 0
        obs = p.obs(batch.obs)
        h = p.hiddens(n.agent, obs, la)
        chosen = n.agent.q(h[:, :-1], batch.actions)
        mixer_in = MixerInput(chosen, batch.state[:, :-1])
        with torch.no_grad():
            th = p.hiddens(n.target_agent, obs, la)
            th = th[:, 1:]  # [B, T, N, H]
            a_star = self.target_cem(th, batch.mask > 0)
            target_q = n.target_agent.q(th, a_star)
            target_tot = n.target_mixer(MixerInput(target_q, batch.state[:, 1:]))
        return Forward(chosen, target_q, target_tot, None, None, mixer_in, batch.reward)

    def target_cem(self, th: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """argmax_a of the target agent's Q_i(h, a) by CEM at the steps inside episodes (`valid`
        [B, T]; padding gets action 0, which every loss masks): [B, T, N, H] -> [B, T, N, A].
        The head's recurrent part is projected once; the (b, t, i) go through CEM in chunks."""
        target_agent = self.nets.target_agent
        B, T, N, H = th.shape
        A = self.low.shape[-1]
        rows = valid.unsqueeze(-1).expand(B, T, N).reshape(-1)
        z = target_agent.project(th).reshape(B * T * N, -1)[rows]
        low = self.low.to(th.dtype).expand(B, T, N, A).reshape(-1, A)[rows]
        high = self.high.to(th.dtype).expand(B, T, N, A).reshape(-1, A)[rows]
        c, out = self.cem, []
        for s in range(0, z.shape[0], self.CEM_CHUNK):
            zc = z[s : s + self.CEM_CHUNK]
            out.append(
                cem_argmax(
                    lambda cand, zc=zc: target_agent.q_projected(zc, cand),
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

    def state_dict(self) -> dict:
        return {"cem_generator": self.cem_generator.get_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.cem_generator.set_state(sd["cem_generator"])
