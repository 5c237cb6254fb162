"""algo.skip_padding=true: the learner's agent passes run on the time steps inside each episode only
(packed sequences). The same function on those steps (Q values, losses and every gradient to
float precision), Q = 0 after each episode's end, deterministic, with nn.GRU and the fused kernel."""

import numpy as np
import pytest
import torch
from torch import nn

from differ.assemble import assemble
from differ.config import ConfigError, build_config
from differ.nets import fused_gru
from differ.nets.agent import RNNAgent, packing

from .conftest import TINY_LBF
from .test_resume import metrics_pair, uninterrupted_and_resumed
from .test_speed_options import SPEC, _buffer


def test_packing_lists_every_step_inside_an_episode_once_time_major_longest_first():
    lengths = torch.tensor([2, 4, 0, 4, 1])
    T, N = 5, 2
    sizes, index = packing(lengths, T, N)
    assert sizes.tolist() == [8, 6, 4, 4]  # rows alive at each step, never growing
    b, rest = index // (T * N), index % (T * N)
    t, n = rest // N, rest % N
    assert sorted(zip(b.tolist(), t.tolist(), n.tolist())) == sorted(
        (e, s, a) for e in range(5) for s in range(int(lengths[e])) for a in range(N)
    )
    assert (t.diff() >= 0).all()  # time-major
    step0 = b[: sizes[0]].tolist()
    assert step0 == [1, 1, 3, 3, 0, 0, 4, 4]  # longest first, ties in batch order
    for s in range(1, len(sizes)):  # a sequence keeps its row while it lasts
        assert b[sizes[:s].sum() : sizes[:s].sum() + sizes[s]].tolist() == step0[: sizes[s]]


@pytest.mark.parametrize("fused", [False, True])
def test_the_packed_agent_is_the_same_function_on_the_steps_inside_episodes(fused):
    torch.manual_seed(0)
    B, T, N, O, A = 6, 9, 3, 7, 4
    agent = RNNAgent(O, A, N)
    agent.fused_gru = fused
    obs, la = torch.randn(B, T, N, O), torch.randint(0, A + 1, (B, T, N))
    lengths = torch.tensor([9, 3, 6, 6, 1, 8])
    inside = (torch.arange(T)[None] < lengths[:, None])[..., None, None].float()
    full, _ = agent(obs, la)
    packed, h = agent(obs, la, lengths=lengths)
    assert h is None
    torch.testing.assert_close(packed * inside, full * inside, rtol=1e-5, atol=1e-6)
    assert (packed * (1 - inside)).abs().max() == 0  # nothing is computed after an episode's end
    w = torch.randn_like(full) * inside
    g_full = torch.autograd.grad((full * w).sum(), list(agent.parameters()))
    g_packed = torch.autograd.grad((packed * w).sum(), list(agent.parameters()))
    for a, b in zip(g_packed, g_full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_packed_kernel_is_nn_grus_packed_sequence():
    """The kernel on a packed batch against nn.GRU on the same PackedSequence: outputs and the
    gradients of the input and all four weights."""
    torch.manual_seed(1)
    gru = nn.GRU(24, 24)
    sizes = torch.tensor([7, 7, 5, 2, 2, 1])
    x = torch.randn(int(sizes.sum()), 24, requires_grad=True)
    w = torch.randn(int(sizes.sum()), 24)

    def run(f):
        out = f(x)
        (out * w).sum().backward()
        grads = [p.grad.clone() for p in (x, *gru.parameters())]
        for p in (x, *gru.parameters()):
            p.grad = None
        return out.detach(), grads

    ref = run(lambda a: gru(nn.utils.rnn.PackedSequence(a, sizes))[0].data)
    mine = run(lambda a: fused_gru.unroll_packed(gru, a, sizes))
    torch.testing.assert_close(mine[0], ref[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(mine[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "algo, fused",
    [
        ("qmix", "false"),
        ("qmix_differ", "false"),
        ("qmix_differ", "true"),
        ("qplex_differ", "false"),
        ("maser", "false"),
    ],
)
def test_a_learner_step_is_the_same_with_and_without_padding(algo, fused):
    over = {"env": "lbf", "algo": algo, "algo.fused_gru": fused}
    plain = assemble(build_config(over), SPEC)
    packed = assemble(build_config({**over, "algo.skip_padding": "true"}), SPEC)
    again = assemble(build_config({**over, "algo.skip_padding": "true"}), SPEC)
    batch = _buffer().sample(8, np.random.default_rng(3))
    lengths = batch.mask.sum(1)
    assert lengths.min() < lengths.max()  # the batch has padding to skip
    fa, fb = plain.forward(batch), packed.forward(batch)
    torch.testing.assert_close(
        fb.chosen * batch.mask[..., None], fa.chosen * batch.mask[..., None], rtol=1e-5, atol=1e-6
    )
    sa, sb, sc = plain.train(batch), packed.train(batch), again.train(batch)
    assert sb == sc  # deterministic
    key = "loss_agents" if "loss_agents" in sa else "loss_td"
    assert sb[key] == pytest.approx(sa[key], rel=1e-4)
    for p, q in zip(plain.agent.parameters(), packed.agent.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)


def test_skip_padding_needs_the_rnn_agent():
    with pytest.raises(ConfigError, match="algo.skip_padding=true needs the rnn agent"):
        build_config({"env": "mamujoco", "algo": "comix", "algo.skip_padding": "true"})


def test_a_run_that_skips_padding_resumes_exactly(tmp_path):
    common = [
        *TINY_LBF,
        "algo=qmix_differ",
        "t_max=1500",
        "checkpoint_interval=300",
        "seed=3",
        "algo.skip_padding=true",
        "algo.fused_gru=true",
    ]
    full, killed = uninterrupted_and_resumed(common, tmp_path)
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4 and a == b
