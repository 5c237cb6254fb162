"""COMA (Foerster et al. 2018): an on-policy actor-critic with a counterfactual baseline
(docs/method.md, "COMA").

  actor   the DRQN agent network outputs logits; π_a = softmax over the available actions with
          the ε floor of the run's ε schedule mixed in (differ/acting/softmax.py)
  critic  Q(s, o_a, u_-a, u_{t-1}, a) -> every action's value for agent a (differ/nets/coma_critic.py),
          trained on TD(λ) targets from a target critic, on the batch's own episodes
  A_a     = Q(s, u) − Σ_u' π_a(u' | τ_a) Q(s, (u_-a, u'))        over valid steps and alive agents
  L_actor = − Σ m·A_a·log π_a(u_a | τ_a) / Σ m

There is no mixer (`has_mixer`: `differ verify` refuses); the assembly's mixer object is ignored
and not checkpointed. The trainer trains an `on_policy` learner once per algo.batch_size collected
episodes, on exactly those (differ/run/trainer.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..acting.schedules import linear
from ..acting.softmax import SoftmaxController, masked_policy
from ..errors import ConfigError
from ..nets.coma_critic import ComaCritic
from ..replay.episode_buffer import Batch
from .base import Learner
from .values import last_actions


def td_lambda_targets(
    reward: torch.Tensor, terminated: torch.Tensor, mask: torch.Tensor, q: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """TD(λ) targets, backwards: reward, terminated, mask [B, T]; q [B, T+1, N] the target
    critic's value of the joint action at each step, at an episode's end (index L) the bootstrap
    value of its last state. -> G [B, T, N], with

      G_t = r_t + γ(1 − term_t)·Q̃_{t+1}                             at the last step t = L − 1
      G_t = r_t + γ(1 − term_t)·((1 − λ)·Q̃_{t+1} + λ·G_{t+1})        before it

    A terminated episode ends without a bootstrap; a truncated one bootstraps from Q̃_L. The
    values after an episode's end are finite and meaningless (the losses mask them)."""
    T = reward.shape[1]
    G = torch.zeros_like(q[:, :T])
    nxt = q[:, T]
    for t in reversed(range(T)):
        last = (mask[:, t + 1] == 0) if t + 1 < T else torch.ones_like(mask[:, t], dtype=torch.bool)
        boot = torch.where(last.unsqueeze(-1), q[:, t + 1], (1 - lam) * q[:, t + 1] + lam * nxt)
        G[:, t] = reward[:, t, None] + gamma * (1 - terminated[:, t, None]) * boot
        nxt = G[:, t]
    return G


def counterfactual_advantage(q: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor):
    """q, pi [..., A], actions [...] -> (A = Q(s, u) − Σ_u' π(u') Q(s, (u_-a, u')), the baseline)."""
    baseline = (pi * q).sum(-1)
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - baseline, baseline


class ComaLearner(Learner):
    action_kinds = frozenset({"discrete"})
    has_mixer = False  # `differ verify` has nothing to decompose
    title = "COMA"
    on_policy = True  # the trainer trains on the episodes just collected, once

    def __init__(self, agent, mixer, cfg, spec=None, seed: int = 0, device="cpu", coma=None, **rest):
        if cfg.buffer_size != cfg.batch_size or cfg.train_steps_per_episode * cfg.batch_size != 1:
            raise ConfigError(
                f"algo.learner=coma is on-policy: it needs algo.buffer_size = algo.batch_size and "
                f"algo.train_steps_per_episode = 1/algo.batch_size, got {cfg.buffer_size}, {cfg.batch_size} and "
                f"{cfg.train_steps_per_episode} (algo=coma sets them)"
            )
        if cfg.target_tau is not None:
            raise ConfigError("algo.target_tau: COMA copies its target critic every algo.target_update_episodes")
        self.coma = coma
        # built before the base class's optimisers, from the torch generator the assembly seeded
        self.critic = ComaCritic(spec.state_dim, spec.obs_dim, spec.n_agents, spec.n_actions, coma.critic_hidden)
        self.critic.to(device)
        self.target_critic = ComaCritic(spec.state_dim, spec.obs_dim, spec.n_agents, spec.n_actions, coma.critic_hidden)
        self.target_critic.to(device).requires_grad_(False)
        self.target_critic.load_state_dict(self.critic.state_dict())
        super().__init__(agent, mixer, cfg, spec=spec, seed=seed, device=device, **rest)
        # draws the joint action at each episode's last state (the truncated ends' bootstrap); checkpointed
        self.generator = torch.Generator().manual_seed(seed + 104729)

    # ---- optimisers, networks, state --------------------------------------------------------
    def build_optimisers(self) -> None:
        self.actor_params = list(self.agent.parameters())
        self.critic_params = list(self.critic.parameters())
        self.agent_optimiser = self.make_optimiser(self.actor_params)
        self.critic_optimiser = self.make_optimiser(self.critic_params)
        self.apply_optimiser_settings()

    def named_optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"agent_optimiser": self.agent_optimiser, "critic_optimiser": self.critic_optimiser}

    def apply_optimiser_settings(self) -> None:
        super().apply_optimiser_settings()
        for group in self.critic_optimiser.param_groups:
            group["lr"] = self.coma.critic_lr

    def networks(self) -> dict[str, nn.Module]:
        return {"agent": self.agent, "critic": self.critic, "target_critic": self.target_critic}

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.target_critic)]

    def extra_state(self) -> dict:
        return {"bootstrap_generator": self.generator.get_state()}

    def load_extra_state(self, sd: dict) -> None:
        self.generator.set_state(sd["bootstrap_generator"])

    def controller(self, agent=None):
        return SoftmaxController(self.agent if agent is None else agent)

    # ---- one training step --------------------------------------------------------------------
    def policy(self, batch: Batch, epsilon: float) -> torch.Tensor:
        """π_ε of every agent at every step 0..T (the live agent network, with gradient) [B, T+1, N, A]."""
        la = last_actions(batch.actions, self.agent.n_actions)
        lengths = batch.mask.sum(1).long() + 1 if self.cfg.skip_padding else None
        logits = self.precision.unroll(self.agent, self.precision.obs(batch.obs), la, lengths)
        return masked_policy(logits, batch.avail, epsilon)

    def joint_actions(self, batch: Batch, pi: torch.Tensor) -> torch.Tensor:
        """The taken actions at steps 0..T-1 and, at each episode's last state (index L), a joint
        action drawn from π_ε: [B, T+1, N] (the critic needs u_-a there to bootstrap)."""
        B, T, N = batch.actions.shape
        L = batch.mask.sum(1).long()
        at_end = pi.detach()[torch.arange(B, device=pi.device), L].reshape(B * N, -1)
        drawn = torch.multinomial(at_end.float().cpu(), 1, generator=self.generator).view(B, N)
        u = torch.cat([batch.actions, torch.zeros_like(batch.actions[:, :1])], dim=1)
        u[torch.arange(B, device=u.device), L] = drawn.to(u.device)
        return u

    def train(self, batch: Batch, t_env: int = 0) -> dict[str, float]:
        c = self.cfg
        epsilon = linear(c.epsilon_start, c.epsilon_finish, c.epsilon_anneal_steps, t_env)
        T = batch.max_t
        pi = self.policy(batch, epsilon)
        u = self.joint_actions(batch, pi)
        la = last_actions(batch.actions, self.agent.n_actions)
        x = self.critic.inputs(batch.state, batch.obs.float(), u, la)  # [B, T+1, N, D]
        with torch.no_grad():
            target_taken = self.target_critic(x).gather(-1, u.unsqueeze(-1)).squeeze(-1)
            y = td_lambda_targets(
                batch.reward, batch.terminated, batch.mask, target_taken, c.gamma, self.coma.td_lambda
            )
        q, stats = self.train_critic(x[:, :T], batch.actions, y, batch.mask)

        m = batch.mask.unsqueeze(-1) * batch.alive[:, :T].to(batch.mask.dtype)  # valid steps, alive agents
        pi = pi[:, :T]
        advantage, _ = counterfactual_advantage(q, pi.detach(), batch.actions)
        pi_taken = pi.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        log_pi = torch.log(torch.where(m > 0, pi_taken, torch.ones_like(pi_taken)))
        n = m.sum().clamp(min=1)
        loss = -(advantage * log_pi * m).sum() / n
        grad_norm = self.step(self.agent_optimiser, loss, self.actor_params, c.grad_clip)
        with torch.no_grad():
            stats.update(
                loss_actor=loss.item(),
                grad_norm_actor=grad_norm,
                advantage_mean=((advantage * m).sum() / n).item(),
                pi_max=((pi.max(-1).values * m).sum() / n).item(),
            )
        return stats

    def train_critic(self, x: torch.Tensor, actions: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
        """The critic on the TD(λ) targets y [B, T, N] at the valid steps (every agent: a dead
        agent's value is what its last living step bootstraps from). seq: one update per step,
        the last first, as PyMARL; batch: one update on all. -> (Q of every action before each
        update, detached [B, T, N, A], statistics)."""
        B, T, N, _ = x.shape
        m = mask.unsqueeze(-1).expand(B, T, N)
        chunks = (
            [slice(t, t + 1) for t in reversed(range(T))] if self.coma.critic_train_mode == "seq" else [slice(0, T)]
        )
        q_all = x.new_zeros(B, T, N, self.critic.n_actions)
        losses, norms, q_sum, td_sum, n_all = [], [], 0.0, 0.0, 0.0
        for s in chunks:
            ms = m[:, s]
            if ms.sum() == 0:
                continue
            q = self.critic(x[:, s])
            q_all[:, s] = q.detach()
            q_taken = q.gather(-1, actions[:, s].unsqueeze(-1)).squeeze(-1)
            delta = (q_taken - y[:, s]) * ms
            loss = (delta**2).sum() / ms.sum()
            norms.append(self.step(self.critic_optimiser, loss, self.critic_params, self.cfg.grad_clip))
            losses.append(loss.item())
            q_sum += (q_taken.detach() * ms).sum().item()
            td_sum += delta.detach().abs().sum().item()
            n_all += ms.sum().item()
        k, n = max(len(losses), 1), max(n_all, 1.0)
        stats = {
            "loss_critic": sum(losses) / k,
            "grad_norm_critic": sum(norms) / k,
            "td_error_abs": td_sum / n,
            "q_taken_mean": q_sum / n,
            "target_mean": ((y * m).sum() / m.sum().clamp(min=1)).item(),
        }
        return q_all, stats
