"""`differ bench`'s end-to-end measurement drives a real Trainer (it broke once when the trainer
began to need start_new() before train(); nothing else exercised it)."""

from differ.commands.bench import train_steps_per_s


def test_train_steps_per_s_runs_a_real_trainer():
    speed = train_steps_per_s(
        {"env": "lbf", "env.time_limit": "20", "algo.batch_size": "2", "torch_threads": "1"}, warmup=200, measure=200
    )
    assert speed > 0


def test_the_plain_yardstick_computes_differs_qmix_loss():
    """The benchmark's plain PyTorch step is the same computation as differ's QMIX step: given the
    same weights and batch, both give the same TD loss (so their times compare like for like)."""
    import numpy as np
    import torch

    from differ.assemble import assemble
    from differ.commands.bench import learner_step_ms
    from differ.commands.bench_reference import PlainQMIXStep
    from differ.config import build_config
    from differ.envs.base import DiscreteActions, EnvSpec
    from differ.replay.episode_buffer import EpisodeBuffer

    n, obs, state, A, T = 3, 6, 5, 4, 7
    spec = EnvSpec(n, DiscreteActions(A), obs, state, T, (0,) * n, ("unit",) * n)
    ours = assemble(build_config({"algo": "qmix", "env": "lbf"}), spec)
    plain = PlainQMIXStep(n, obs, state, A)
    with torch.no_grad():
        for p_agent, o_agent in ((plain.agent, ours.agent), (plain.target_agent, ours.target_agent)):
            p_agent.fc1.weight.copy_(
                torch.cat([o_agent.fc_obs.weight, o_agent.last_action.weight[:A].T, o_agent.agent_id.weight.T], dim=1)
            )
            p_agent.fc1.bias.copy_(o_agent.fc_obs.bias)
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(p_agent.rnn, k).copy_(getattr(o_agent.rnn, k + "_l0"))
            p_agent.fc2.load_state_dict(o_agent.fc_out.state_dict())
        for p_mix, o_mix in ((plain.mixer, ours.mixer), (plain.target_mixer, ours.target_mixer)):
            sd = {k.replace("value.", "v."): v for k, v in o_mix.state_dict().items()}
            p_mix.load_state_dict(sd)
    buf = EpisodeBuffer(spec, 8, "float32")
    rng = np.random.default_rng(0)
    for L in (7, 3, 5, 7):
        buf.add(
            obs=rng.random((L + 1, n, obs)),
            state=rng.random((L + 1, state)),
            avail=rng.random((L + 1, n, A)) > 0.3,
            alive=np.ones((L + 1, n), bool),
            actions=rng.integers(0, A, (L, n)),
            reward=rng.random(L),
            terminated=L < 7,
        )
    batch = buf.sample(4, rng)
    assert plain.train(batch) == __import__("pytest").approx(ours.train(batch)["loss_td"], rel=1e-5)
    # and the benchmark times every variant of its learner section
    ms = learner_step_ms("2s3z", ("plain_qmix", "qmix", "qmix:algo.agent_precision=bfloat16"), reps=1)
    assert set(ms) == {"plain_qmix", "qmix", "qmix:algo.agent_precision=bfloat16"} and min(ms.values()) > 0
