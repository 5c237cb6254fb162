"""Cross-entropy method: the greedy continuous action argmax_a Q(a) of many (env, agent) pairs at
once, as COMIX selects actions (docs/method.md, "COMIX").

Samples live in an unbounded space u ~ N(mean, std), squashed and scaled into each agent's box:
a = low + (tanh(u) + 1)/2 · (high − low). Each iteration keeps the `elites` best samples of
`samples` and refits the mean and the (unbiased) std to them; the single best sample of the last
iteration is returned. Padded action dimensions have low = high = 0, so they stay 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def squash(u: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return low + (torch.tanh(u) + 1) * 0.5 * (high - low)


@torch.no_grad()
def cem_argmax(
    q: Callable[[torch.Tensor], torch.Tensor],
    lead: tuple[int, ...],
    low: torch.Tensor,
    high: torch.Tensor,
    generator: torch.Generator,
    samples: int = 64,
    elites: int = 6,
    iterations: int = 2,
) -> torch.Tensor:
    """q: candidate actions [K, *lead, A] -> values [K, *lead]; low/high broadcast to [*lead, A].
    Returns the best action found, [*lead, A]."""
    shape = (*lead, low.shape[-1])
    mean = torch.zeros(shape, dtype=low.dtype, device=low.device)
    std = torch.ones(shape, dtype=low.dtype, device=low.device)
    for it in range(iterations):
        # drawn on the generator's device (the CPU) and moved: the same samples on every device
        noise = torch.randn((samples, *shape), generator=generator, dtype=low.dtype, device=generator.device)
        u = mean + std * noise.to(low.device)
        a = squash(u, low, high)
        values = q(a)  # [K, *lead]
        if it == iterations - 1:
            best = values.argmax(0)  # [*lead]
            return torch.take_along_dim(a, best[None, ..., None], dim=0)[0]
        top = values.topk(elites, dim=0).indices  # [elites, *lead]
        chosen = torch.take_along_dim(u, top[..., None], dim=0)
        mean, std = chosen.mean(0), chosen.std(0).clamp(min=1e-3)
    raise ValueError("iterations must be at least 1")
