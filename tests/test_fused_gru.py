"""algo.fused_gru=true: the learner's agent GRU through the compiled kernel (differ/nets/fused_gru.cpp).
It must be nn.GRU's function to float precision (outputs and every gradient), deterministic, leave
the default path and the process's float mode alone, and fail with one line where it cannot build."""

import numpy as np
import pytest
import torch
from torch import nn

from differ.assemble import assemble
from differ.config import ConfigError, build_config
from differ.nets import fused_gru

from .conftest import TINY_LBF, run_cli
from .test_resume import metrics_pair, uninterrupted_and_resumed
from .test_speed_options import SPEC, _buffer


@pytest.mark.parametrize(
    "T, R, H, with_h0", [(1, 1, 64, False), (1, 3, 64, True), (9, 12, 64, True), (30, 40, 24, True), (6, 600, 64, True)]
)
def test_the_kernel_is_nn_gru(T, R, H, with_h0):
    """Outputs, h_T and the gradients of the input, h0 and all four weights, against nn.GRU.
    H=24 is not a multiple of the vector width: the loop's scalar tail is covered too; 600 rows
    split the gate loops across threads."""
    torch.manual_seed(T)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _check_against_nn_gru(T, R, H, with_h0)
    finally:
        torch.set_num_threads(threads)


def _check_against_nn_gru(T, R, H, with_h0):
    gru = nn.GRU(H, H)
    x = torch.randn(T, R, H, requires_grad=True)
    h0 = torch.randn(1, R, H, requires_grad=True) if with_h0 else None
    w_out, w_h = torch.randn(T, R, H), torch.randn(1, R, H)

    def run(f):
        out, h = f(gru, x, h0)
        ((out * w_out).sum() + (h * w_h).sum()).backward()
        grads = [p.grad.clone() for p in (x, *gru.parameters())] + ([h0.grad.clone()] if with_h0 else [])
        for p in (x, h0, *gru.parameters()):
            if p is not None:
                p.grad = None
        return out.detach(), h.detach(), grads

    ref, mine = run(lambda g, a, b: g(a, b)), run(fused_gru.unroll)
    torch.testing.assert_close(mine[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mine[1], ref[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(mine[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the target networks' path (nothing saved for a backward)
        out, h = fused_gru.unroll(gru, x, h0)
    torch.testing.assert_close(out, ref[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["qmix", "qmix_differ", "qplex_differ"])
def test_fused_gru_learner_is_the_same_function_and_deterministic(algo):
    plain = assemble(build_config({"env": "lbf", "algo": algo}), SPEC)
    fused = assemble(build_config({"env": "lbf", "algo": algo, "algo.fused_gru": "true"}), SPEC)
    again = assemble(build_config({"env": "lbf", "algo": algo, "algo.fused_gru": "true"}), SPEC)
    assert fused.agent.fused_gru and fused.target_agent.fused_gru and not plain.agent.fused_gru
    batch = _buffer().sample(8, np.random.default_rng(3))
    fa, fb = plain.forward(batch), fused.forward(batch)
    torch.testing.assert_close(fb.q_all, fa.q_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fb.target_q, fa.target_q, rtol=1e-5, atol=1e-6)
    sa, sb, sc = plain.train(batch), fused.train(batch), again.train(batch)
    assert sb == sc  # deterministic
    key = "loss_td" if algo == "qmix" else "loss_agents"
    assert sb[key] == pytest.approx(sa[key], rel=1e-5)
    for p, q in zip(plain.agent.parameters(), fused.agent.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)


def test_bfloat16_with_the_fused_gru_keeps_the_recurrence_in_float32():
    learner = assemble(
        build_config({"env": "lbf", "algo": "qmix", "algo.fused_gru": "true", "algo.agent_precision": "bfloat16"}), SPEC
    )
    full = assemble(build_config({"env": "lbf", "algo": "qmix"}), SPEC)
    batch = _buffer().sample(8, np.random.default_rng(2))
    fwd = learner.forward(batch)
    assert fwd.q_all.dtype == torch.float32
    torch.testing.assert_close(fwd.q_all, full.forward(batch).q_all, rtol=0.05, atol=0.02)
    learner.train(batch)


def test_loading_the_kernel_leaves_denormals_alone():
    """-ffast-math compiles the kernel but must not link the code that flushes denormals to zero
    for the whole process (that would change every other number torch computes)."""
    fused_gru.kernel()
    tiny = torch.tensor([1e-40])
    assert (tiny * 1.0).item() != 0.0


def test_fused_gru_needs_the_rnn_agent():
    with pytest.raises(ConfigError, match="algo.fused_gru=true needs the rnn agent"):
        build_config({"env": "mamujoco", "algo": "comix", "algo.fused_gru": "true"})


def test_a_kernel_that_cannot_build_is_one_line(monkeypatch, tmp_path):
    # in a process of its own, so this one's loaded kernel and torch's build bookkeeping stay as they are
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    monkeypatch.setenv("DIFFER_KERNEL_CACHE", str(tmp_path / "kernels"))
    proc = run_cli("train", "env=lbf", "algo.fused_gru=true", "t_max=1", f"run_dir={tmp_path / 'r'}", check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("differ: error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1
    assert "algo.fused_gru=true: the fused GRU kernel did not compile" in lines[0]
    assert "leave algo.fused_gru out" in lines[0]
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_a_lock_left_by_a_killed_build_does_not_hang_the_next_run():
    import os
    import time

    fused_gru.kernel()
    lock = fused_gru.build_dir() / "lock"
    lock.touch()
    old = time.time() - 2 * fused_gru.STALE_LOCK_S
    os.utime(lock, (old, old))
    fused_gru.kernel.cache_clear()
    assert fused_gru.kernel() is not None  # torch would wait on the lock for ever
    assert not lock.exists()


def test_a_fused_gru_run_resumes_exactly_and_differs_from_the_default(tmp_path):
    common = [*TINY_LBF, "algo=qmix_differ", "t_max=1500", "checkpoint_interval=300", "seed=3"]
    full, killed = uninterrupted_and_resumed([*common, "algo.fused_gru=true"], tmp_path)
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4 and a == b
    run_cli("train", *common, f"run_dir={tmp_path / 'default'}")
    plain, fused = metrics_pair(tmp_path / "default", full)
    assert plain != fused  # the option does something (float rounding, then diverging episodes)
    assert [r["t_env"] for r in plain] == [r["t_env"] for r in fused]
