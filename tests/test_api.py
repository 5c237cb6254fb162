"""The Python API: the examples of docs/api.md, docs/environments.md, docs/architecture.md (a new
mixer, a new learner) and the README run as written, and errors are the CLI's."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import differ

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("doc", ["docs/api.md", "docs/environments.md", "README.md", "docs/architecture.md"])
def test_the_documented_example_runs(tmp_path, doc):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)
    assert blocks
    # as a user would: a fresh interpreter in a fresh directory
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "runs").glob("*/result.json"))


def test_train_evaluate_and_keys(tmp_path):
    run = differ.train(
        algo="vdn",
        env="lbf",
        t_max=300,
        seed=5,
        run_dir=str(tmp_path / "r"),
        progress=False,
        test_episodes=2,
        test_interval=100,
        log_interval=100,
        env__time_limit=20,
        algo__batch_size=4,
        **{"algo.buffer_size": 50},
    )
    assert isinstance(run, differ.TrainResult) and run.run_dir == tmp_path / "r"
    assert run.result["t_env"] >= 300 and run.test_win_rate is None and run.test_return is not None
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run.run_dir / "config.yaml")
    assert cfg.algo.mixer == "vdn" and cfg.algo.batch_size == 4 and cfg.env.time_limit == 20 and cfg.progress is False
    ev = differ.evaluate(run.run_dir, episodes=3)
    assert ev["episodes"] == 3 and ev["return_ci95"][0] <= ev["return_mean"] <= ev["return_ci95"][1]


def test_errors_are_typed_and_one_line(tmp_path):
    with pytest.raises(differ.ConfigError, match=r"unknown config key 'algo.lrr'"):
        differ.train(algo="qmix", env="lbf", algo__lrr=1, run_dir=str(tmp_path / "x"))
    with pytest.raises(differ.ConfigError, match="algo.differ.eta_start does not apply"):
        differ.train(algo="qmix", env="lbf", **{"algo.differ.eta_start": 0.9}, run_dir=str(tmp_path / "x"))
    with pytest.raises(differ.CheckpointError, match="no such directory"):
        differ.train(resume=tmp_path / "nothing")
    with pytest.raises(differ.ConfigError, match="episodes"):
        differ.evaluate(tmp_path, episodes=0)
    assert not (tmp_path / "x").exists()
    assert issubclass(differ.ConfigError, differ.DifferError)


def test_string_values_stay_strings_and_a_thread_can_train(tmp_path):
    """A str is never read as YAML ("yes" is no bool); differ.train runs outside the main thread
    (a tuner's trial), where Python allows no signal handlers."""
    import threading

    from differ.api import _cli_value

    assert _cli_value("yes") == '"yes"' and _cli_value("null") == '"null"' and _cli_value(None) == "null"
    out = {}
    t = threading.Thread(
        target=lambda: out.update(
            r=differ.train(
                algo="qmix",
                env="lbf",
                t_max=100,
                run_dir=str(tmp_path / "t"),
                progress=False,
                wandb_entity="yes",
                test_episodes=1,
                env__time_limit=20,
                algo__batch_size=2,
                **{"algo.buffer_size": 10},
            )
        )
    )
    t.start()
    t.join(300)
    assert out["r"].result["t_env"] >= 100
    from omegaconf import OmegaConf

    assert OmegaConf.load(tmp_path / "t" / "config.yaml").wandb_entity == "yes"
