"""The yardstick for `differ bench`'s learner step: QMIX's training step written the plain way.

This is how a PyMARL-style code base writes it, in ordinary PyTorch and nothing else: the agent
input is the observation concatenated with one-hots of the last action and the agent id; a
Linear -> ReLU -> GRUCell -> Linear agent is stepped in a Python loop over time for the live and
the target network; a QMIX mixer of hypernetworks (batched matmuls); the double-Q target over
available actions; the masked TD loss; RMSprop with gradient clipping. Same sizes and defaults as
differ's QMIX (hidden 64, embed 32, hypernet 64, lr 5e-4, alpha 0.99, eps 1e-5, clip 10, γ 0.99).

It takes the same `Batch` as differ's learners, so the benchmark times both on the same samples.
It is a measuring stick only: no run uses it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PlainAgent(nn.Module):
    def __init__(self, input_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(input_dim, hidden)
        self.rnn = nn.GRUCell(hidden, hidden)
        self.fc2 = nn.Linear(hidden, n_actions)

    def forward(self, inputs: torch.Tensor, h: torch.Tensor):
        h = self.rnn(F.relu(self.fc1(inputs)), h)
        return self.fc2(h), h


class PlainQMixer(nn.Module):
    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hyper: int = 64):
        super().__init__()
        self.n, self.embed = n_agents, embed
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, n_agents * embed))
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, embed))
        self.v = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        B = qs.shape[0]
        s = states.reshape(-1, states.shape[-1])
        q = qs.reshape(-1, 1, self.n)
        w1 = self.hyper_w1(s).abs().view(-1, self.n, self.embed)
        hidden = F.elu(torch.bmm(q, w1) + self.hyper_b1(s).view(-1, 1, self.embed))
        w2 = self.hyper_w2(s).abs().view(-1, self.embed, 1)
        y = torch.bmm(hidden, w2) + self.v(s).view(-1, 1, 1)
        return y.view(B, -1)


class PlainQMIXStep:
    def __init__(self, n_agents: int, obs_dim: int, state_dim: int, n_actions: int):
        self.n, self.A = n_agents, n_actions
        self.agent = PlainAgent(obs_dim + n_actions + n_agents, n_actions)
        self.mixer = PlainQMixer(n_agents, state_dim)
        self.target_agent = PlainAgent(obs_dim + n_actions + n_agents, n_actions)
        self.target_mixer = PlainQMixer(n_agents, state_dim)
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())
        self.params = list(self.agent.parameters()) + list(self.mixer.parameters())
        self.optimiser = torch.optim.RMSprop(self.params, lr=5e-4, alpha=0.99, eps=1e-5)

    def inputs(self, batch) -> torch.Tensor:
        B, T1 = batch.obs.shape[:2]
        last = torch.zeros(B, T1, self.n, self.A)
        last[:, 1:] = F.one_hot(batch.actions, self.A).float()
        ids = torch.eye(self.n).expand(B, T1, self.n, self.n)
        return torch.cat([batch.obs, last, ids], dim=-1)

    def unroll(self, agent: PlainAgent, x: torch.Tensor) -> torch.Tensor:
        B, T1 = x.shape[:2]
        h = torch.zeros(B * self.n, agent.hidden)
        out = []
        for t in range(T1):
            q, h = agent(x[:, t].reshape(B * self.n, -1), h)
            out.append(q.view(B, self.n, -1))
        return torch.stack(out, dim=1)  # [B, T+1, N, A]

    def train(self, batch) -> float:
        x = self.inputs(batch)
        q = self.unroll(self.agent, x)
        chosen = torch.gather(q[:, :-1], 3, batch.actions.unsqueeze(3)).squeeze(3)
        with torch.no_grad():
            tq = self.unroll(self.target_agent, x)[:, 1:]
            live = q[:, 1:].detach().clone()
            live[~batch.avail[:, 1:]] = -9999999
            a_star = live.argmax(3, keepdim=True)
            target_max = torch.gather(tq, 3, a_star).squeeze(3)
            target_tot = self.target_mixer(target_max, batch.state[:, 1:])
        q_tot = self.mixer(chosen, batch.state[:, :-1])
        y = batch.reward + 0.99 * (1 - batch.terminated) * target_tot
        td = (q_tot - y) * batch.mask
        loss = (td**2).sum() / batch.mask.sum()
        self.optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, 10.0)
        self.optimiser.step()
        return loss.item()
