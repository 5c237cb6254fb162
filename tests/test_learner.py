"""Mixers and the team TD target, on hand-made tensors."""

import pytest
import torch
from omegaconf import OmegaConf

from differ.config import AlgoConfig
from differ.learners import TeamLearner
from differ.nets.agent import RNNAgent
from differ.nets.mixers import QMixer, VDNMixer
from differ.replay.episode_buffer import Batch


def test_qmix_is_monotonic():
    torch.manual_seed(0)
    mixer = QMixer(n_agents=5, state_dim=12)
    qs = torch.randn(64, 7, 5, requires_grad=True)
    state = torch.randn(64, 7, 12) * 3
    (g,) = torch.autograd.grad(mixer(qs, state).sum(), qs)
    assert g.shape == qs.shape and (g >= 0).all() and (g > 0).any()


def test_vdn_is_a_sum():
    qs = torch.randn(4, 3, 6)
    torch.testing.assert_close(VDNMixer(6, 10)(qs, torch.randn(4, 3, 10)), qs.sum(-1))


class FixedQ(RNNAgent):
    """An agent network whose Q values are given, to check the target arithmetic by hand."""

    def __init__(self, q):
        super().__init__(obs_dim=1, n_actions=q.shape[-1], n_agents=q.shape[2])
        self.q = torch.nn.Parameter(q.clone())

    def forward(self, obs, last_action, h=None):
        return self.q, None


def test_td_target_terminal_padding_and_double_q():
    B, T, N, A = 2, 3, 2, 3
    gamma = 0.9
    live = torch.zeros(B, T + 1, N, A)
    target = torch.zeros(B, T + 1, N, A)
    # at every step the live net prefers action 2, but action 2 is unavailable at t >= 1:
    # double Q must pick the best AVAILABLE live action (1), then read the target net there
    live[..., 2] = 5.0
    live[..., 1] = 1.0
    target[..., 0], target[..., 1], target[..., 2] = 100.0, 3.0, 1000.0
    avail = torch.ones(B, T + 1, N, A, dtype=torch.bool)
    avail[:, 1:, :, 2] = False
    actions = torch.zeros(B, T, N, dtype=torch.long)
    reward = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.25, 0.0]])
    # episode 0: 3 steps, terminated at the last; episode 1: 2 steps, truncated (then padding)
    terminated = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    batch = Batch(
        obs=torch.zeros(B, T + 1, N, 1),
        state=torch.zeros(B, T + 1, 1),
        avail=avail,
        alive=torch.ones(B, T + 1, N, dtype=torch.bool),
        actions=actions,
        reward=reward,
        terminated=terminated,
        mask=mask,
    )
    cfg = OmegaConf.structured(AlgoConfig(mixer="vdn", gamma=gamma))
    learner = TeamLearner(FixedQ(live), VDNMixer(N, 1), cfg)
    learner.target_agent = FixedQ(target)
    fwd = learner.forward(batch)
    assert (fwd.target_q == 3.0).all(), "double Q over available actions: target Q at action 1"
    q_tot, y, delta = learner.team_td(fwd, batch, fwd.chosen)
    expected_y = reward + gamma * (1 - terminated) * 2 * 3.0
    torch.testing.assert_close(y, expected_y)
    assert y[0, 2] == 3.0, "no bootstrap at the terminal step"
    assert abs(y[1, 1].item() - (0.25 + gamma * 6.0)) < 1e-5, (
        "a truncated episode bootstraps from its final observation"
    )
    torch.testing.assert_close(q_tot, torch.zeros(B, T))  # chosen action 0 has live Q 0
    assert delta[1, 2] == 0, "padding contributes nothing"
    torch.testing.assert_close(delta, (q_tot - expected_y) * mask)
    # without double Q the target is the max over available target actions (100 at action 0)
    learner.cfg.double_q = False
    assert (learner.forward(batch).target_q == 100.0).all()


def test_training_step_reduces_td_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    B, T, N, A, O, S = 8, 6, 3, 4, 5, 7
    g = torch.Generator().manual_seed(1)
    batch = Batch(
        obs=torch.randn(B, T + 1, N, O, generator=g),
        state=torch.randn(B, T + 1, S, generator=g),
        avail=torch.ones(B, T + 1, N, A, dtype=torch.bool),
        alive=torch.ones(B, T + 1, N, dtype=torch.bool),
        actions=torch.randint(0, A, (B, T, N), generator=g),
        reward=torch.randn(B, T, generator=g),
        terminated=torch.zeros(B, T),
        mask=torch.ones(B, T),
    )
    cfg = OmegaConf.structured(AlgoConfig(mixer="qmix"))
    learner = TeamLearner(RNNAgent(O, A, N), QMixer(N, S), cfg)
    first = learner.train(batch)["loss_td"]
    for _ in range(50):
        last = learner.train(batch)["loss_td"]
    assert last < 0.5 * first


def test_a_learner_refuses_an_action_space_it_cannot_act_in():
    """Capability flags: a discrete learner on an env with another kind of action space stops with
    one line naming both, and the episode schema has no fields for a space it does not know."""
    from dataclasses import dataclass

    from differ.assemble import assemble
    from differ.config import ConfigError, build_config
    from differ.envs.base import EnvSpec
    from differ.replay.schema import EpisodeSchema

    @dataclass(frozen=True)
    class Box:
        dims: tuple
        kind = "box"

    spec = EnvSpec(2, Box((3, 3)), 4, 5, 10, (0, 0), ("a", "a"))
    with pytest.raises(ConfigError, match="algo=qmix acts in discrete action spaces, and env=smax 3m has box actions"):
        assemble(build_config({"algo": "qmix"}), spec)
    with pytest.raises(TypeError, match="Box action spaces"):
        EpisodeSchema(spec)


@pytest.mark.parametrize("skip_empty_obs", [False, True])
def test_acting_step_is_a_one_step_unroll(skip_empty_obs):
    """The controller advances the agent one step at a time with `step` (a GRU cell): exactly a
    length-1 unroll of `forward` (nn.GRU), and the function training unrolls over whole episodes
    (equal up to float rounding: the matmuls there cover all time steps at once)."""
    torch.manual_seed(0)
    E, N, O, A, T = 3, 4, 11, 6, 7
    agent = RNNAgent(O, A, N)
    agent.skip_empty_obs = skip_empty_obs
    obs = torch.randn(E, T, N, O)
    obs[1, 3:, 2] = 0  # a unit that died: all-zero observations
    last = torch.randint(0, A + 1, (E, T, N))
    with torch.no_grad():
        q_unrolled, h_end = agent(obs, last)
        h = agent.init_hidden(E * N)
        for t in range(T):
            q_one, h_one = agent(obs[:, t : t + 1], last[:, t : t + 1], h)
            q, h_step = agent.step(obs[:, t], last[:, t], h[0])
            assert torch.equal(q, q_one[:, 0]) and torch.equal(h_step, h_one[0])
            torch.testing.assert_close(q, q_unrolled[:, t], rtol=1e-5, atol=1e-6)
            h = h_one
    torch.testing.assert_close(h[0], h_end[0], rtol=1e-5, atol=1e-6)
