"""The team learner (VDN, QMIX, QPLEX, COMIX): one TD loss on Q_tot trains the agent networks and
the mixer together (docs/method.md §2).

  Q_tot = mixer(Q_1(τ_1, u_1), ..., Q_N(τ_N, u_N), s)
  y     = R + γ(1 − terminated)·Q̃_tot(τ', a*)        a*_i: double-Q over the available actions
  L     = Σ m (Q_tot − y)² / Σ m                     m: the steps inside each episode
"""

from __future__ import annotations

from ..replay.episode_buffer import Batch
from .base import Learner


class TeamLearner(Learner):
    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        fwd = self.forward(batch)  # Q_i of the taken actions, the targets at t+1, the mixer's input
        q_tot, y, delta = self.team_td(fwd, batch, fwd.chosen)
        loss = (delta**2).sum() / batch.mask.sum()
        grad_norm = self.step(self.optimiser, loss + self.l1_penalty(), self.params, self.cfg.grad_clip)
        return {**self.team_stats(loss, delta, q_tot, y, batch.mask), "grad_norm": grad_norm}
