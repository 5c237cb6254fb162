"""`differ bench`'s end-to-end measurement drives a real Trainer (it broke once when the trainer
began to need start_new() before train(); nothing else exercised it)."""

from differ.bench import train_steps_per_s


def test_train_steps_per_s_runs_a_real_trainer():
    speed = train_steps_per_s({"env": "lbf", "env.time_limit": "20", "algo.batch_size": "2",
                               "torch_threads": "1"}, warmup=200, measure=200)
    assert speed > 0
