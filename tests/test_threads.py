"""The default is one torch thread. torch_threads=0 takes one thread per core the rest of the
machine leaves idle when a run starts, and keeps that count (saved in config.yaml): the thread
count changes the float rounding, so a count that followed the load would make the numbers and
every resume depend on it."""

import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from differ.run import threads

from .conftest import TINY_LBF, run_cli

MULTI = min(threads.usable_cores(), threads.TORCH_DEFAULT_THREADS) >= 2 and threads._machine_busy_s() is not None


@pytest.mark.skipif(not MULTI, reason="needs 2+ cores and /proc/stat")
def test_a_busy_program_leaves_one_thread_fewer():
    cap = min(threads.usable_cores(), threads.TORCH_DEFAULT_THREADS)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert threads.idle_threads(window_s=1.0) <= cap - 1
    finally:
        busy.kill()
        busy.wait()
    assert 1 <= threads.idle_threads(window_s=0.2) <= cap
    assert threads.idle_threads(max_threads=1) == 1


def test_the_default_is_one_thread(tmp_path):
    run_cli("train", *TINY_LBF, "t_max=100", f"run_dir={tmp_path / 'r'}")
    assert OmegaConf.load(tmp_path / "r" / "config.yaml").torch_threads == 1


def test_the_count_a_run_takes_is_saved_and_kept_on_resume(tmp_path):
    run = tmp_path / "r"
    run_cli("train", *TINY_LBF, "t_max=300", "torch_threads=0", f"run_dir={run}")
    chosen = OmegaConf.load(run / "config.yaml").torch_threads
    assert 1 <= chosen <= threads.usable_cores()
    run_cli("train", f"resume={run}", "t_max=400")
    assert OmegaConf.load(run / "config.yaml").torch_threads == chosen
    run_cli("train", f"resume={run}", "t_max=500", "torch_threads=1")  # a resume may change it
    assert OmegaConf.load(run / "config.yaml").torch_threads == 1
