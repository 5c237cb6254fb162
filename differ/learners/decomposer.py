"""DIFFER's decomposer: the team TD error split into individual TD errors (Eq. 2 / Eq. 8;
docs/method.md §3). It works for any mixer through `mixer(MixerInput) -> Q_tot`: g_i is the
derivative by the chosen Q_i with every other input (state, actions, max Q_i) held fixed.

  g_i  = ∂Q_tot/∂Q_i, exact, from one autograd call on a detached leaf copy of the chosen Q_i,
         with the mixer before its update (the mixer acts per time step, so one call gives all)
  r_i  = (R + γ(1 − term)·Q̃_tot − Q_tot)·g_i − γ(1 − d_i)·Q̃_i + Q_i
  y_i  = r_i + γ(1 − d_i)·Q̃_i,   δ_i = Q_i − y_i = g_i·δ   (so Σ_i ∂L_i/∂θ = ∂L_tot/∂θ, Eq. 1)
d_i is agent i's own termination: its unit died during step t, or the team episode ended there.
The individual mask keeps the step at which an agent dies (no bootstrap) and drops later ones:
q_m(b, t, i) = m_bt · alive(b, t, i).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets.mixers import MixerInput


@dataclass
class Decomposition:
    q_tot: torch.Tensor  # [B, T] Q_tot of the chosen actions, graph into the mixer only
    y_tot: torch.Tensor  # [B, T] team target R + γ(1 − term)·Q̃_tot
    g: torch.Tensor  # [B, T, N] ∂Q_tot/∂Q_i
    reward_i: torch.Tensor  # [B, T, N] individual rewards r_i
    y_i: torch.Tensor  # [B, T, N] individual targets (no gradient)
    done_i: torch.Tensor  # [B, T, N] 1 where agent i's trajectory ends at t
    mask_i: torch.Tensor  # [B, T, N] individual mask q_m


def agent_done(alive: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """[B, T+1, N] alive flags, [B, T] team termination -> [B, T, N] d_i (float)."""
    died = alive[:, :-1] & ~alive[:, 1:]
    return torch.maximum(died.to(terminated.dtype), terminated.unsqueeze(-1).expand_as(died))


def decompose(
    mixer,
    mixer_in: MixerInput,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    alive: torch.Tensor,
    target_q: torch.Tensor,
    target_tot: torch.Tensor,
    gamma: float,
    g_clamp: float | None = None,
) -> Decomposition:
    """mixer_in: the mixer's input at steps 0..T-1 (its qs [B, T, N] are the chosen Q_i; their
    gradient is not used here); reward / terminated / mask [B, T], alive [B, T+1, N], target_q
    [B, T, N] and target_tot [B, T] evaluated at t+1 (no gradient)."""
    q_leaf = mixer_in.qs.detach().requires_grad_(True)
    q_tot = mixer(mixer_in.with_qs(q_leaf))
    (g,) = torch.autograd.grad(q_tot.sum(), q_leaf, retain_graph=True)
    if g_clamp is not None:  # the authors' safety clamp; off by default (g is exact here)
        g = g.clamp(-g_clamp, g_clamp)
    y_tot = reward + gamma * (1 - terminated) * target_tot
    done_i = agent_done(alive, terminated)
    q_i = q_leaf.detach()
    bootstrap_i = gamma * (1 - done_i) * target_q
    reward_i = (y_tot - q_tot.detach()).unsqueeze(-1) * g - bootstrap_i + q_i
    y_i = reward_i + bootstrap_i
    mask_i = mask.unsqueeze(-1) * alive[:, :-1].to(mask.dtype)
    return Decomposition(q_tot, y_tot, g, reward_i, y_i, done_i, mask_i)


def decompose_step(mixer, fwd, batch, gamma: float, g_clamp: float | None = None) -> Decomposition:
    """`decompose` on one training step: a learner's forward pass (`Forward`, learners/values.py)
    and the batch it came from."""
    return decompose(
        mixer,
        fwd.mixer_in,
        fwd.reward,
        batch.terminated,
        batch.mask,
        batch.alive,
        fwd.target_q,
        fwd.target_tot,
        gamma,
        g_clamp,
    )
