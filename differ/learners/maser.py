"""MASER (Jeon et al., ICML 2022), the DIFFER paper's experience-replay baseline: individual
subgoals chosen from each replayed episode, and an intrinsic reward for getting close to them.

Per sampled batch, on top of QMIX's team TD (docs/method.md §2):
  q̃_i(t)   target Q of the live greedy action at t;  Q̃_tot(t) = target mixer at t
  t*_{b,i}  = argmax over the episode's VALID steps of α·q̃_i(t) + (1 − α)·Q̃_tot(t)/N
  g_{b,i}   = o_{b,t*,i}, the subgoal observation
  r^I_{b,t,i} = −‖φ(o_{b,t,i}) − φ(g_{b,i})‖      (0 at the subgoal, negative elsewhere)
  reward hook: R ← R + λ·mean_i r^I   (before the team and the individual targets)
  individual TD: y_i = softmax_i(Q̃(a*))·R + λ·r^I_i + γ(1 − term)·Q̃_i(a*),  L_ind = Σ m δ_i² / Σ m
  loss = L_tot + w_ind·L_ind  (w_ind = 0.0008: the published 0.001 × its `ind` 0.8)

φ = Linear(O, 128) → ReLU → Linear(128, A). In the published code φ is created after the
optimiser and never trained, so it is a fixed random map (and its distance loss changes nothing):
that is the default here. `algo.maser.train_phi=true` trains φ with its own optimiser on the
distance loss the MASER paper describes: ‖φ(o_t) − φ(g)‖ should match 1 − cos(q̃(o_t), q̃(g))
between the target Q vectors, over valid steps. One difference from the published code: the
subgoal is chosen among valid steps only (the published argmax also runs over padding).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..replay.episode_buffer import Batch
from .base import Learner
from .values import Forward, greedy_actions, mixer_input


def subgoal_steps(q_ind: torch.Tensor, q_tot: torch.Tensor, mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """q_ind [B, T, N], q_tot [B, T], mask [B, T] -> t* [B, N]: the valid step with the highest
    α·q̃_i + (1 − α)·Q̃_tot/N (never a padded step)."""
    n = q_ind.shape[-1]
    score = alpha * q_ind + (1 - alpha) * q_tot.unsqueeze(-1) / n
    score = score.masked_fill(~(mask > 0).unsqueeze(-1), -torch.inf)
    return score.argmax(dim=1)


def at_steps(x: torch.Tensor, t_star: torch.Tensor) -> torch.Tensor:
    """x [B, T, N, D], t* [B, N] -> [B, N, D]: agent i's row at its own step t*_{b,i}."""
    B, _, N, D = x.shape
    return x.gather(1, t_star.view(B, 1, N, 1).expand(B, 1, N, D)).squeeze(1)


def intrinsic_rewards(phi: nn.Module, obs: torch.Tensor, t_star: torch.Tensor) -> torch.Tensor:
    """r^I [B, T, N] = −‖φ(o_t) − φ(g)‖ for obs [B, T, N, O] and subgoal steps t* [B, N], with the
    subgoal g = o_{t*}: φ runs once, so r^I is exactly 0 at the subgoal."""
    phi_obs = phi(obs)
    return -(phi_obs - at_steps(phi_obs, t_star).unsqueeze(1)).norm(dim=-1)


class MaserLearner(Learner):
    action_kinds = frozenset({"discrete"})  # its subgoals and individual term read per-action Q values

    def __init__(self, agent, mixer, cfg, maser, spec=None, seed: int = 0, device="cpu", **sections):
        super().__init__(agent, mixer, cfg, spec=spec, seed=seed, device=device, **sections)
        self.maser = m = maser  # algo.maser
        # created after the main optimiser: not part of it (as in the published code)
        self.phi = nn.Sequential(
            nn.Linear(agent.fc_obs.in_features, m.phi_hidden), nn.ReLU(), nn.Linear(m.phi_hidden, agent.n_actions)
        ).to(self.device)
        self.phi_optimiser = self.make_optimiser(list(self.phi.parameters())) if m.train_phi else None
        self.phi.requires_grad_(m.train_phi)

    # φ reads the observations too, in float32
    batch_obs_dtype = torch.float32

    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks(), "phi": self.phi}

    def named_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        out = {"optimiser": self.optimiser}
        if self.phi_optimiser is not None:
            out["phi_optimiser"] = self.phi_optimiser
        return out

    # ---- the reward hook: subgoals and intrinsic rewards ------------------------------------
    def reward_hook(self, fwd: Forward, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            avail = batch.avail[:, :-1]
            greedy = greedy_actions(fwd.q_all[:, :-1], avail)
            tq = fwd.target_q_all[:, :-1]
            q_ind = tq.gather(-1, greedy.unsqueeze(-1)).squeeze(-1)
            q_tot = self.target_mixer(mixer_input(self.target_mixer, q_ind, batch.state[:, :-1], greedy, tq, avail))
            t_star = subgoal_steps(q_ind, q_tot, batch.mask, self.maser.alpha)
            r_int = intrinsic_rewards(self.phi, batch.obs[:, :-1], t_star)
        fwd.extras.update(t_star=t_star, intrinsic=r_int)
        return batch.reward + self.maser.intrinsic_weight * r_int.mean(-1)

    # ---- one training step ----------------------------------------------------------------------
    def individual_loss(self, fwd: Forward, batch: Batch) -> torch.Tensor:
        gamma, lam = self.cfg.gamma, self.maser.intrinsic_weight
        share = F.softmax(fwd.target_q, dim=-1)  # over agents
        y_i = (
            share * fwd.reward.unsqueeze(-1)
            + lam * fwd.extras["intrinsic"]
            + gamma * (1 - batch.terminated).unsqueeze(-1) * fwd.target_q
        )
        delta_i = (fwd.chosen - y_i.detach()) * batch.mask.unsqueeze(-1)
        return (delta_i**2).sum() / batch.mask.sum()

    def phi_loss(self, fwd: Forward, batch: Batch) -> torch.Tensor:
        """MASER's distance loss: ‖φ(o_t) − φ(g)‖ against 1 − cos of the target Q vectors."""
        tq, t_star = fwd.target_q_all[:, :-1], fwd.extras["t_star"]
        dissimilarity = 1 - F.cosine_similarity(tq, at_steps(tq, t_star).unsqueeze(1), dim=-1, eps=1e-8)
        dist = -intrinsic_rewards(self.phi, batch.obs[:, :-1], t_star)
        valid = batch.mask.unsqueeze(-1).expand_as(dist)
        return (((dist - dissimilarity) ** 2) * valid).sum() / valid.sum()

    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        fwd = self.forward(batch)
        q_tot, y, delta = self.team_td(fwd, batch, fwd.chosen)
        loss = (delta**2).sum() / batch.mask.sum()
        loss_ind = self.individual_loss(fwd, batch)
        total = loss + self.maser.individual_weight * loss_ind
        grad_norm = self.step(self.optimiser, total + self.l1_penalty(), self.params, self.cfg.grad_clip)
        stats = {
            **self.team_stats(loss, delta, q_tot, y, batch.mask),
            "grad_norm": grad_norm,
            "loss_ind": loss_ind.item(),
            "intrinsic_reward_mean": (
                (fwd.extras["intrinsic"] * batch.mask.unsqueeze(-1)).sum() / (batch.mask.sum() * self.agent.n_agents)
            ).item(),
        }
        if self.phi_optimiser is not None:
            loss_phi = self.phi_loss(fwd, batch)
            stats["loss_phi"] = loss_phi.item()
            stats["grad_norm_phi"] = self.step(
                self.phi_optimiser, loss_phi, list(self.phi.parameters()), self.cfg.grad_clip
            )
        return stats
