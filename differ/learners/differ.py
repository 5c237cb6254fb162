"""DIFFER (docs/method.md §3-5): the mixer learns from the team TD error, the agent networks from
individual TD errors chosen by fair experience replay. Both updates come from one forward pass.

  forward   live and target agent nets over the batch (Learner.forward)
  decompose g_i, r_i, y_i with the mixer before its update (decomposer.py)
  mixer     L_tot = Σ m δ² / Σ m with the Q_i detached            -> mixer optimiser
  agents    L_ind = Σ weight_j δ_j² / |E|, δ_j = Q_j − y_j          -> agent optimiser
            weight = draw count × IS weight (selection "per") or 1 on valid elements ("all",
            the "-divide" variant)

Mixer-agnostic: any mixer (`differ/nets/mixers.py`) works unchanged; a mixer without parameters
(VDN) simply has no mixer optimiser, and its g_i come out as exactly 1.
"""

from __future__ import annotations

import torch

from ..envs.base import EnvSpec
from ..errors import TrainingDiverged
from ..replay.episode_buffer import Batch
from ..replay.fair import beta_at, eta_at, fair_health, fair_weights
from .base import Learner
from .decomposer import decompose_step


class DifferLearner(Learner):
    def __init__(self, agent, mixer, cfg, spec: EnvSpec, t_max: int, differ, seed: int = 0, device="cpu", **sections):
        super().__init__(agent, mixer, cfg, spec=spec, seed=seed, device=device, **sections)
        self.differ = differ  # algo.differ
        self.t_max = t_max
        self.generator = torch.Generator().manual_seed(seed)  # fair replay's draws, checkpointed
        self.unit_types = list(spec.unit_type_names)

    def build_optimisers(self) -> None:
        """Two optimisers, gradients clipped separately: agents (individual TD), mixer (team TD)."""
        self.agent_params = list(self.agent.parameters())
        self.mixer_params = list(self.mixer.parameters())
        self.optimiser = self.make_optimiser(self.agent_params)
        self.mixer_optimiser = self.make_optimiser(self.mixer_params) if self.mixer_params else None

    def selection_weights(self, delta_i: torch.Tensor, valid: torch.Tensor, t_env: int):
        """Loss weights and draw counts over the individual experiences of this batch."""
        if self.differ.selection == "all":
            w = valid.to(delta_i.dtype)
            return w, w, 1.0, None
        eta, beta = eta_at(t_env, self.t_max, self.differ), beta_at(t_env, self.t_max, self.differ)
        weights, counts = fair_weights(
            delta_i.detach().abs(), valid, eta, beta, self.differ.per_alpha, self.differ.per_eps, self.generator
        )
        return weights, counts, eta, beta

    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        fwd = self.forward(batch)
        dec = decompose_step(self.mixer, fwd, batch, self.cfg.gamma, self.differ.g_clamp)
        # the mixer: team TD on detached agent Q values
        delta = (dec.q_tot - dec.y_tot) * batch.mask
        loss_mixer = (delta**2).sum() / batch.mask.sum()
        stats = self.team_stats(loss_mixer, delta, dec.q_tot, dec.y_tot, batch.mask)
        if self.mixer_optimiser is not None:
            stats["grad_norm_mixer"] = self.step(
                self.mixer_optimiser, loss_mixer, self.mixer_params, self.cfg.grad_clip
            )
        # the agents: individual TD on the selected experiences
        delta_i = fwd.chosen - dec.y_i
        valid = dec.mask_i > 0
        # every element, padding included: fair replay's priorities are computed over all of them
        if not bool(torch.isfinite(delta_i).all()):
            raise TrainingDiverged("the individual TD errors became non-finite")
        n_valid = valid.sum().clamp(min=1)
        weights, counts, eta, beta = self.selection_weights(delta_i, valid, t_env)
        loss_agents = (weights * delta_i**2).sum() / n_valid
        stats["grad_norm_agents"] = self.step(
            self.optimiser, loss_agents + self.l1_penalty(), self.agent_params, self.cfg.grad_clip
        )
        stats.update(
            loss_mixer=loss_mixer.item(),
            loss_agents=loss_agents.item(),
            grad_norm=stats["grad_norm_agents"],
            selected_ratio=eta,
        )
        if beta is not None:
            stats["beta"] = beta
        stats.update(self.diagnostics(dec, delta_i.detach(), valid, counts))
        return stats

    @torch.no_grad()
    def diagnostics(self, dec, delta_i, valid, counts) -> dict[str, float]:
        """The paper's analyses: Fig. 9 (td_ind_std_norm) and Fig. 12 (sample_share/<unit type>);
        fair replay's health (fair_top10_share, td_ind_over_eps; `differ analyze fair`)."""
        td = delta_i.abs()[valid]
        out = {
            "reward_i_mean": dec.reward_i[valid].mean().item(),
            "td_error_ind_abs": td.mean().item(),
            "td_ind_std_norm": (td.std() / td.mean()).item() if td.numel() > 1 else 0.0,
        }
        health = fair_health(delta_i.abs(), valid, counts, self.differ.per_eps)
        if self.differ.selection != "per":  # -divide draws nothing: every valid experience, once
            health.pop("fair_top10_share", None)
        out.update(health)
        # drawn share per agent and unit type, beside each type's share of the valid experiences
        # (what uniform sampling would draw): Fig. 12 plots one against the other
        for prefix, per_agent in (("sample_share", counts.sum((0, 1))), ("valid_share", valid.sum((0, 1)))):
            total = per_agent.sum()
            if total == 0:
                continue
            share = per_agent.to(torch.float64) / total
            if prefix == "sample_share":
                for i, s in enumerate(share.tolist()):
                    out[f"sample_share/agent_{i}"] = s
            for name in dict.fromkeys(self.unit_types):
                idx = [i for i, u in enumerate(self.unit_types) if u == name]
                out[f"{prefix}/{name}"] = share[idx].sum().item()
        return out

    def named_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        out = {"optimiser": self.optimiser}
        if self.mixer_optimiser is not None:
            out["mixer_optimiser"] = self.mixer_optimiser
        return out

    def extra_state(self) -> dict:
        return {**super().extra_state(), "generator": self.generator.get_state()}

    def load_extra_state(self, sd: dict) -> None:
        super().load_extra_state(sd)
        self.generator.set_state(sd["generator"])
