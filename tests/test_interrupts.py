"""Ctrl-C always stops `differ train`, whenever it comes, and says what to run next (issue 32,
items 2 and 12). Each interrupt is placed deterministically from inside the process, where a
SIGINT from outside would land at a random point of the start-up."""

import subprocess
import sys
import textwrap

from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, TINY_SMAX


def run_script(body: str, *args: str) -> subprocess.CompletedProcess:
    """`differ train ARGS` through the CLI's entry point, after BODY has set its trap."""
    script = textwrap.dedent(body) + f"\nfrom differ.cli import main\nsys.exit(main({['train', *args]!r}))\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_a_ctrl_c_lost_in_a_gc_callback_still_stops_the_start_up(tmp_path):
    # JAX runs a callback at every garbage collection; a KeyboardInterrupt raised inside one is
    # printed as "Exception ignored" and lost. Before the fix the run then trained to t_max, exit 0.
    run_dir = tmp_path / "run"
    proc = run_script(
        """
        import gc, os, signal, sys
        import differ.cli
        fired = []
        def trap(phase, info):
            if phase == "start" and not fired and "differ.commands.train" in sys.modules:
                fired.append(1)  # the command has started, the run has not
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(100))  # Python runs the handler here, inside the callback
        gc.callbacks.append(trap)
        """,
        *TINY_LBF,
        "t_max=3000",
        f"run_dir={run_dir}",
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    # one line, and nothing of the lost exception's "Exception ignored" traceback
    assert proc.stderr.strip().splitlines()[-1].startswith("differ: error: interrupted before the run")
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert not ckpt.list_checkpoints(run_dir) and not (run_dir / "metrics.jsonl").exists()


def test_a_second_ctrl_c_advises_resume_with_the_path_quoted(tmp_path):
    run_dir = tmp_path / "a run"  # a space: the printed command must still paste into a shell
    proc = run_script(
        """
        import os, signal, sys
        from differ.run.trainer import Trainer
        from differ.store import checkpoint as ckpt
        periodic = Trainer._periodic
        def twice(self, final):
            periodic(self, final)
            if ckpt.list_checkpoints(self.run_dir):
                os.kill(os.getpid(), signal.SIGINT)  # stop at the end of the batch
                os.kill(os.getpid(), signal.SIGINT)  # no: stop now
        Trainer._periodic = twice
        """,
        *TINY_LBF,
        "t_max=3000",
        "checkpoint_interval=200",
        f"run_dir={run_dir}",
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"differ: error: interrupted; continue the run with `differ train resume='{run_dir}'`", proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_ctrl_c_during_an_import_lets_it_finish_and_stops_the_start_up(tmp_path):
    # Python raised KeyboardInterrupt inside whatever was importing; inside jaxlib's extension
    # module that crashed the interpreter now and then (SIGSEGV). Now the import finishes first.
    run_dir = tmp_path / "run"
    proc = run_script(
        """
        import os, signal, sys
        def trap(event, args):
            if event == "import" and args[0] == "jax" and not getattr(trap, "fired", False):
                trap.fired = True
                os.kill(os.getpid(), signal.SIGINT)
        sys.addaudithook(trap)
        """,
        *TINY_SMAX,
        "t_max=3000",
        f"run_dir={run_dir}",
    )
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("differ: error: interrupted before the run"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "metrics.jsonl").exists()
