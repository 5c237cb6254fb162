"""Target networks: copied whole every `algo.target_update_interval` episodes (hard), or moved a
step τ towards the live networks after every training step (soft, COMIX's `algo.target_tau`)."""

from __future__ import annotations

import torch
from torch import nn


def hard_update(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    """θ̃ ← θ for every (live, target) pair."""
    for live, target in pairs:
        target.load_state_dict(live.state_dict())


@torch.no_grad()
def soft_update(pairs: list[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """θ̃ ← τ·θ + (1 − τ)·θ̃ for every (live, target) pair."""
    for live, target in pairs:
        for p, tp in zip(live.parameters(), target.parameters()):
            tp.lerp_(p, tau)
