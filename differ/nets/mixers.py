"""Mixers: Q_tot = f(Q_1..Q_N, s, ...). One interface, so that the learner and DIFFER's decomposer
work with any mixer unchanged:

    mixer(MixerInput(qs [B, T, N], state [B, T, S], actions [B, T, N, A], max_qs [B, T, N])) -> Q_tot [B, T]

`qs` (the Q_i of the chosen actions) is the only input DIFFER differentiates Q_tot by; a mixer
declares in `reads` which of the optional inputs it needs, and the learner fills in only those.
`mixer(qs, state)` is shorthand for a mixer that reads the state alone.
Adding a mixer means one class here, one entry in `MIXERS`, and a preset (and, if it has
settings, a dataclass of its keyword arguments in differ/config/schema.py's `SECTIONS`, set by users as
`algo.<mixer>.<key>`); `differ verify` then says whether DIFFER's decomposition is exact for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class MixerInput:
    """Everything a mixer may read at each (b, t); leading dims are free."""

    qs: torch.Tensor  # [..., N] Q_i of the chosen (for targets: the greedy) actions
    state: torch.Tensor  # [..., S]
    actions: torch.Tensor | None = None  # [..., N, A] one-hot of those actions
    max_qs: torch.Tensor | None = None  # [..., N] max_a Q_i over the available actions, no gradient

    def with_qs(self, qs: torch.Tensor) -> MixerInput:
        return replace(self, qs=qs)


class Mixer(nn.Module):
    """Base class: subclasses implement `mix(x: MixerInput)` and list the optional inputs they read."""

    reads: frozenset[str] = frozenset()  # of "actions", "max_qs"
    # the action spaces it can mix for: one reading one-hot actions or max_a Q_i needs discrete ones
    action_kinds: frozenset[str] = frozenset({"discrete", "continuous"})

    def forward(self, x: MixerInput | torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(x, MixerInput):
            x = MixerInput(x, state)
        missing = [k for k in self.reads if getattr(x, k) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} reads {', '.join(sorted(missing))}, which the input lacks")
        return self.mix(x)

    def mix(self, x: MixerInput) -> torch.Tensor:
        raise NotImplementedError


class VDNMixer(Mixer):
    """Q_tot = sum_i Q_i; no parameters, so no mixer optimiser."""

    def __init__(self, n_agents: int, state_dim: int, **_):
        super().__init__()

    def mix(self, x: MixerInput) -> torch.Tensor:
        return x.qs.sum(-1)


class QMixer(Mixer):
    """Monotonic mixing network; hypernetworks turn the state into non-negative weights, so
    dQ_tot/dQ_i >= 0 everywhere."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_hidden: int = 64, **_):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden), nn.ReLU(), nn.Linear(hypernet_hidden, n_agents * embed_dim)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden), nn.ReLU(), nn.Linear(hypernet_hidden, embed_dim)
        )
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def mix(self, x: MixerInput) -> torch.Tensor:
        agent_qs, state = x.qs, x.state
        lead = agent_qs.shape[:-1]
        w1 = self.hyper_w1(state).abs().view(*lead, self.n_agents, self.embed_dim)
        hidden = F.elu(torch.einsum("...n,...ne->...e", agent_qs, w1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.value(state).squeeze(-1)


class QPLEXMixer(Mixer):
    """QPLEX's duplex dueling mixer (DMAQ, Wang et al. 2021), as its reference code builds it:

        Q'_i = w_i(s)·Q_i + v_i(s),  max Q'_i = w_i(s)·max Q_i + v_i(s),  w = |MLP(s)| + 1e-10
        λ_i(s, a) = Σ_k (|key_k(s)| + 1e-10)·σ(agents_k(s))_i·σ(action_k([s, onehot(a)]))_i   (K kernels)
        Q_tot = Σ_i Q'_i + Σ_i (λ_i − 1)·stopgrad(Q'_i − max Q'_i)

    The advantage term is detached as in the reference code (λ still learns through it), so
    ∂Q_tot/∂Q_i = w_i(s) exactly and DIFFER's decomposition reproduces the team gradient."""

    reads = frozenset({"actions", "max_qs"})
    action_kinds = frozenset({"discrete"})

    def __init__(self, n_agents: int, state_dim: int, n_actions: int, hypernet_hidden: int = 64, kernels: int = 4, **_):
        super().__init__()
        self.n_agents = n_agents

        def head():
            return nn.Sequential(nn.Linear(state_dim, hypernet_hidden), nn.ReLU(), nn.Linear(hypernet_hidden, n_agents))

        self.weight, self.value = head(), head()
        self.keys = nn.ModuleList(nn.Linear(state_dim, 1) for _ in range(kernels))
        self.agents = nn.ModuleList(nn.Linear(state_dim, n_agents) for _ in range(kernels))
        self.actions = nn.ModuleList(nn.Linear(state_dim + n_agents * n_actions, n_agents) for _ in range(kernels))

    def lam(self, state: torch.Tensor, actions_onehot: torch.Tensor) -> torch.Tensor:
        """λ_i(s, a) [..., N], summed over the kernels."""
        sa = torch.cat([state, actions_onehot.flatten(-2)], dim=-1)
        return sum(
            (key(state).abs() + 1e-10) * torch.sigmoid(ag(state)) * torch.sigmoid(act(sa))
            for key, ag, act in zip(self.keys, self.agents, self.actions)
        )

    def mix(self, x: MixerInput) -> torch.Tensor:
        w = self.weight(x.state).abs() + 1e-10
        v = self.value(x.state)
        q = w * x.qs + v
        max_q = w * x.max_qs + v
        adv = (q - max_q).detach()
        return q.sum(-1) + ((self.lam(x.state, x.actions.to(x.state.dtype)) - 1) * adv).sum(-1)


MIXERS = {"vdn": VDNMixer, "qmix": QMixer, "qplex": QPLEXMixer}


def build_mixer(name: str, n_agents: int, state_dim: int, n_actions: int, algo_cfg) -> Mixer:
    """The mixer `name`, its keyword arguments from the config section `algo.<name>` (if any)."""
    settings = algo_cfg.get(name) or {}
    return MIXERS[name](n_agents, state_dim, n_actions=n_actions, **settings)
