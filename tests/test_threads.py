"""torch_threads=0 follows the idle cores: beside a busy program the run drops to the cores left."""

import subprocess
import sys
import time

import pytest
import torch

from differ import threads


@pytest.mark.skipif(
    min(threads.usable_cores(), threads.TORCH_DEFAULT_THREADS) < 2 or threads._machine_busy_s() is None,
    reason="needs 2+ cores and /proc/stat",
)
def test_the_governor_gives_up_the_core_a_busy_program_takes(monkeypatch):
    monkeypatch.setattr(threads, "INTERVAL_S", 0.5)
    before = torch.get_num_threads()
    g = threads.ThreadGovernor()
    assert g.threads == g.max_threads == min(threads.TORCH_DEFAULT_THREADS, threads.usable_cores()) >= 2
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        x, seen, t0 = torch.randn(256, 256), [], time.time()
        while time.time() - t0 < 10 and (not seen or seen[-1] == g.max_threads):
            t = time.time()
            while time.time() - t < 0.6:
                x @ x
            seen.append(g.update())
        assert seen[-1] == g.max_threads - 1 and torch.get_num_threads() == seen[-1]
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(before)
