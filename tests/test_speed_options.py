"""The speed options: `device` (where the networks and mini-batches live) and
`algo.agent_precision` (bfloat16 autocast around the learner's agent-network passes)."""

import numpy as np
import pytest
import torch

from differ import cli
from differ.assemble import assemble
from differ.config import ConfigError, build_config
from differ.device import resolve_device
from differ.envs.base import DiscreteActions, EnvSpec
from differ.replay.episode_buffer import EpisodeBuffer

N, OBS, STATE, A, T = 3, 11, 7, 5, 9
SPEC = EnvSpec(N, DiscreteActions(A), OBS, STATE, T, (0,) * N, ("unit",) * N)


def _buffer(seed=0):
    buf = EpisodeBuffer(SPEC, 16, "float16")
    rng = np.random.default_rng(seed)
    for _ in range(8):
        L = int(rng.integers(3, T + 1))
        alive = np.ones((L + 1, N), bool)
        alive[L // 2 :, 0] = False  # one agent dies half-way
        buf.add(
            obs=rng.random((L + 1, N, OBS)),
            state=rng.random((L + 1, STATE)),
            avail=rng.random((L + 1, N, A)) > 0.3,
            alive=alive,
            actions=rng.integers(0, A, (L, N)),
            reward=rng.random(L),
            terminated=bool(rng.integers(2)),
        )
    return buf


def _steps(overrides, steps=3):
    learner = assemble(build_config({"env": "lbf", **overrides}), SPEC)
    buf, rng, out = _buffer(), np.random.default_rng(1), []
    for _ in range(steps):
        out.append(learner.train(buf.sample(8, rng).to(learner.device), 100))
    return learner, out


def test_auto_is_the_cpu_without_a_gpu_and_cuda_is_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        pytest.skip("a GPU is visible: the no-GPU message cannot be checked here")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"device={name}: torch sees no CUDA GPU"):
            resolve_device(name)


def test_cuda_without_a_gpu_is_one_line_from_the_cli(capfd, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code = cli.main(["train", "env=lbf", "device=cuda", "t_max=1", f"run_dir={tmp_path / 'r'}"])
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("differ: error:")] == [
        "differ: error: device=cuda: torch sees no CUDA GPU here (a CPU-only torch build, or no driver); "
        "use device=cpu or device=auto"
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("algo", ["qmix", "qmix_differ", "qplex_differ", "maser"])
def test_device_cpu_and_auto_train_alike(algo):
    """device=auto on a machine without a GPU is the CPU path, number for number."""
    if torch.cuda.is_available():
        pytest.skip("auto means the GPU here")
    _, a = _steps({"algo": algo, "device": "cpu"})
    learner, b = _steps({"algo": algo, "device": "auto"})
    assert a == b and learner.device == torch.device("cpu")


@pytest.mark.parametrize("algo", ["qmix", "qmix_differ", "vdn_differ"])
def test_bfloat16_agent_passes(algo):
    """The option runs the agent passes in bfloat16 and hands float32 Q values on: the step is
    deterministic, close to the float32 one, and not the same numbers (the option does something)."""
    full, s32 = _steps({"algo": algo}, steps=1)
    half, s16 = _steps({"algo": algo, "algo.agent_precision": "bfloat16"}, steps=1)
    _, again = _steps({"algo": algo, "algo.agent_precision": "bfloat16"}, steps=1)
    assert s16 == again
    loss = "loss_td" if algo == "qmix" else "loss_agents"
    assert s16[0][loss] != s32[0][loss]
    assert s16[0][loss] == pytest.approx(s32[0][loss], rel=0.05)
    batch = _buffer().sample(8, np.random.default_rng(2))
    for learner in (full, half):
        fwd = learner.forward(batch)
        assert fwd.chosen.dtype == fwd.target_q.dtype == torch.float32
    # the networks themselves stay float32 (autocast casts on the fly)
    assert all(p.dtype == torch.float32 for p in half.agent.parameters())


def test_bfloat16_runs_the_agent_matmuls_in_bfloat16():
    learner, _ = _steps({"algo": "qmix", "algo.agent_precision": "bfloat16"}, steps=0)
    seen = []
    hook = learner.agent.fc_obs.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    learner.forward(_buffer().sample(8, np.random.default_rng(2)))
    hook.remove()
    assert seen == [torch.bfloat16]


def test_device_may_change_on_resume_and_precision_may_not(tmp_path):
    run = tmp_path / "r"
    assert (
        cli.main(
            [
                "train",
                "env=lbf",
                "t_max=200",
                "test_interval=100",
                "progress=false",
                "tensorboard=false",
                f"run_dir={run}",
            ]
        )
        == 0
    )
    from differ.config import load_run_config

    base = load_run_config(run / "config.yaml")
    assert build_config({"device": "auto", "t_max": "400"}, base=base).device == "auto"
    with pytest.raises(ConfigError, match="algo.agent_precision cannot change on resume"):
        build_config({"algo.agent_precision": "bfloat16"}, base=base)


# ---- overlap=true: collecting the next batch while the learner trains --------------------------
def test_overlap_is_deterministic_resumes_exactly_and_lags_by_one_batch(tmp_path):
    from .conftest import TINY_LBF, read_jsonl, run_cli
    from .test_resume import metrics_pair, uninterrupted_and_resumed

    common = [*TINY_LBF, "algo=qmix_differ", "t_max=1500", "checkpoint_interval=300", "seed=3"]
    full, killed = uninterrupted_and_resumed([*common, "overlap=true"], tmp_path)
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4 and a == b  # thread timing and the kill change nothing
    run_cli("train", *common, "overlap=true", f"run_dir={tmp_path / 'again'}")
    x, y = metrics_pair(full, tmp_path / "again")
    assert x == y
    run_cli("train", *common, f"run_dir={tmp_path / 'serial'}")
    serial, overlapped = metrics_pair(tmp_path / "serial", full)
    # the same episodes until the first training step, then the one-batch lag shows
    assert serial != overlapped
    assert serial[0]["t_env"] == overlapped[0]["t_env"]
    first = [r for r in read_jsonl(full / "metrics.jsonl") if "train_steps" in r]
    assert first and first[-1]["train_steps"] > 0


# ---- algo.skip_empty_obs: the input layer skips all-zero observations -------------------------
@pytest.mark.parametrize("algo", ["qmix", "qmix_differ"])
def test_skip_empty_obs_is_the_same_function(algo):
    """Padding and dead units (all-zero observations) map to the bias exactly, so Q values,
    losses and gradients agree with the full input layer up to the order of float sums."""
    full = assemble(build_config({"env": "lbf", "algo": algo}), SPEC)
    skip = assemble(build_config({"env": "lbf", "algo": algo, "algo.skip_empty_obs": "true"}), SPEC)
    batch = _buffer().sample(8, np.random.default_rng(3))
    batch.obs[:, :, 0][batch.alive[:, :, 0].logical_not()] = 0  # the dead agent sees zeros, as SMAX's do
    assert (batch.obs.abs().sum(-1) == 0).float().mean() > 0.1  # padding and deaths: rows to skip
    qa, qb = full.forward(batch), skip.forward(batch)
    torch.testing.assert_close(qa.q_all, qb.q_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(qa.target_q, qb.target_q, rtol=1e-5, atol=1e-6)
    sa, sb = full.train(batch), skip.train(batch)
    key = "loss_td" if algo == "qmix" else "loss_agents"
    assert sa[key] == pytest.approx(sb[key], rel=1e-5)
    for p, q in zip(full.agent.parameters(), skip.agent.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_skip_empty_obs_needs_the_rnn_agent():
    with pytest.raises(ConfigError, match="algo.skip_empty_obs=true needs the rnn agent"):
        build_config({"env": "mamujoco", "algo": "comix", "algo.skip_empty_obs": "true"})


@pytest.mark.parametrize("algo", ["qmix", "qmix_differ"])
def test_bfloat16_learners_sample_bfloat16_observations_with_the_same_numbers(algo):
    """With bfloat16 agent passes the buffer hands the observations over in bfloat16 (cast once,
    no float32 copy): the same values as float32 then bfloat16, so the same training step."""
    over = {"env": "lbf", "algo": algo, "algo.agent_precision": "bfloat16"}
    a, b = assemble(build_config(over), SPEC), assemble(build_config(over), SPEC)
    assert a.batch_obs_dtype == torch.bfloat16
    buf = _buffer()
    full = buf.sample(8, np.random.default_rng(4))
    half = buf.sample(8, np.random.default_rng(4), a.batch_obs_dtype)
    assert full.obs.dtype == torch.float32 and half.obs.dtype == torch.bfloat16
    assert torch.equal(full.obs.to(torch.bfloat16), half.obs) and torch.equal(full.state, half.state)
    assert a.train(full) == b.train(half)
    for p, q in zip(a.agent.parameters(), b.agent.parameters()):
        assert torch.equal(p, q)


def test_maser_and_float32_learners_sample_float32_observations():
    assert assemble(build_config({"env": "lbf", "algo": "qmix"}), SPEC).batch_obs_dtype == torch.float32
    maser = assemble(build_config({"env": "lbf", "algo": "maser", "algo.agent_precision": "bfloat16"}), SPEC)
    assert maser.batch_obs_dtype == torch.float32  # φ reads them in float32
    maser.train(_buffer().sample(8, np.random.default_rng(0), maser.batch_obs_dtype))
