"""Fair experience replay (DIFFER, Eq. 3-5; docs/method.md §4).

A sampled mini-batch of B team episodes is the set E of its valid individual experiences
(b, t, i). Inside it, every training step:
  p_j = (|δ_j| + ε)^α on valid elements, 0 elsewhere;   P(j) = p_j / Σ p
  draw n = ⌊η·|E|⌋ elements from P with replacement (an element drawn k times counts k times)
  w_j = (1 / (|E|·P(j)))^β, normalised by its maximum
  loss weight_j = count_j · w_j          (the agent loss is Σ weight_j · δ_j² / |E|)
Everything is vectorised: one multinomial draw and one bincount.

Health (`fair_health`): fair replay only prioritises when the |δ_j| stand above ε; far below it
every p_j ≈ ε^α and the draws are uniform. Each step reports the share of the draws that fell on
the 10% of valid experiences with the largest |δ_j| (0.10: uniform; 1: all on them) and mean
|δ_j| / ε.

Schedules, linear in environment steps t_env: η from `eta_start` to `eta_end` over the first
`eta_warmup_frac` of t_max (the "warm-up"; η = 1 still samples by P); β from `beta_start` to
`beta_end` over all of t_max.
"""

from __future__ import annotations

import torch


def eta_at(t_env: int, t_max: int, cfg) -> float:
    """Sample ratio η at t_env; fixed at `eta_start` when the warm-up is off (the Fig. 11 ablation)."""
    if not cfg.eta_warmup:
        return cfg.eta_start
    span = cfg.eta_warmup_frac * t_max
    frac = min(1.0, t_env / span) if span > 0 else 1.0
    return cfg.eta_start + (cfg.eta_end - cfg.eta_start) * frac


def beta_at(t_env: int, t_max: int, cfg) -> float:
    frac = min(1.0, t_env / t_max) if t_max > 0 else 1.0
    return cfg.beta_start + (cfg.beta_end - cfg.beta_start) * frac


def fair_weights(
    td_abs: torch.Tensor,
    valid: torch.Tensor,
    eta: float,
    beta: float,
    alpha: float,
    eps: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element loss weights (draw count × IS weight) and draw counts, both shaped like td_abs.

    td_abs: |δ_i| (no gradient); valid: bool mask of the elements of E.
    """
    flat_valid = valid.reshape(-1)
    p = (td_abs.reshape(-1).double() + eps).pow(alpha) * flat_valid
    n_valid = int(flat_valid.sum())
    n_draw = int(eta * n_valid)
    if n_valid == 0 or n_draw == 0:
        zeros = torch.zeros_like(td_abs)
        return zeros, zeros
    probs = p / p.sum()
    is_w = torch.zeros_like(probs)
    is_w[flat_valid] = (1.0 / (n_valid * probs[flat_valid])).pow(beta)
    if not (torch.isfinite(is_w).all() and (probs[flat_valid] > 0).all()):
        # a large alpha: |δ|^alpha overflows or underflows even in float64; the same quantities
        # in log space (only here, so that the usual alphas keep their numbers to the last bit)
        probs, is_w = _stable(td_abs.reshape(-1).double() + eps, flat_valid, alpha, beta)
    # drawn on the CPU, where the (checkpointed) generator lives: the same draws on every device
    idx = torch.multinomial(probs.cpu(), n_draw, replacement=True, generator=generator).to(probs.device)
    counts = torch.bincount(idx, minlength=probs.numel()).to(td_abs.dtype)
    is_w = is_w / is_w.max()
    weights = (counts * is_w.to(td_abs.dtype)).view_as(td_abs)
    return weights, counts.view_as(td_abs)


def _stable(priority: torch.Tensor, valid: torch.Tensor, alpha: float, beta: float):
    """Draw probabilities ∝ priority^alpha over the valid elements, and the IS weights
    (1 / (n probs))^beta scaled to at most 1, computed from logarithms: finite for any alpha."""
    log_p = torch.full_like(priority, -torch.inf)
    log_p[valid] = alpha * priority[valid].log()
    log_probs = log_p - torch.logsumexp(log_p[valid], 0)
    is_w = torch.zeros_like(priority)
    lv = log_probs[valid]
    is_w[valid] = (beta * (lv.min() - lv)).exp()  # the rarest element weighs 1
    return log_probs.exp(), is_w


TOP_FRACTION = 0.1  # fair_top10_share: the draws on this fraction of the largest |δ_j|


def fair_health(td_abs: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor, eps: float) -> dict[str, float]:
    """fair_top10_share: the share of this step's draws that fell on the 10% of valid elements
    with the largest |δ| (0.10 when the draws are uniform); td_ind_over_eps: mean |δ| / ε over the
    valid elements (well below 1: p ≈ ε^α for all, so the draws are near uniform)."""
    td, drawn = td_abs[valid].double(), counts[valid].double()
    if td.numel() == 0:
        return {}
    out = {"td_ind_over_eps": (td.mean() / eps).item()}
    if drawn.sum() > 0:
        k = max(1, round(TOP_FRACTION * td.numel()))
        out["fair_top10_share"] = (drawn[td.topk(k).indices].sum() / drawn.sum()).item()
    return out


NEAR_UNIFORM = 0.13  # fair_top10_share below this counts as near uniform (uniform: 0.10)
UNIFORM_LOGS = 3  # log intervals in a row, after the ε anneal, before the health check warns


def uniform_draws_warning(record: dict, uniform_logs: int, t_env: int) -> tuple[int, str | None]:
    """Fair replay's health check on one log record: (log intervals in a row it drew near
    uniformly, the warning once that reaches UNIFORM_LOGS or None). Near-uniform draws test
    random subsampling, not priorities."""
    share = record.get("fair_top10_share")
    if share is None:
        return uniform_logs, None
    uniform_logs = uniform_logs + 1 if share < NEAR_UNIFORM else 0
    if uniform_logs < UNIFORM_LOGS:
        return uniform_logs, None
    return uniform_logs, (
        f"fair replay is drawing almost uniformly (t_env={t_env:,}): the 10% of individual "
        f"experiences with the largest |δ_i| got less than {NEAR_UNIFORM} of the draws (uniform: 0.10) "
        f"in each of the last {UNIFORM_LOGS} log intervals (last: {share:.3f}), and mean |δ_i| is "
        f"{record.get('td_ind_over_eps', 0):.3g} x algo.differ.per_eps; to prioritise, raise "
        f"env.reward_scale or lower algo.differ.per_eps"
    )
