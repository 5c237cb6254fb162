"""differ: value-factorisation MARL (VDN, QMIX, QPLEX, MASER) and DIFFER's fair individual replay.

    import differ
    run = differ.train(algo="qmix_differ", env="lbf", t_max=20_000, run_dir="runs/demo")
    differ.evaluate(run.run_dir, episodes=32)
    policy = differ.Policy.load(run.run_dir)      # the trained team on the raw env

docs/api.md describes the API; the command line (`differ --help`) does the same things.
"""

from typing import TYPE_CHECKING

from .api import TrainResult, evaluate, train
from .errors import CheckpointError, ConfigError, DifferError, EnvFault, TrainingDiverged

if TYPE_CHECKING:
    from .policy import Policy

__version__ = "0.5.0"
__all__ = [
    "train",
    "evaluate",
    "Policy",
    "TrainResult",
    "DifferError",
    "ConfigError",
    "CheckpointError",
    "TrainingDiverged",
    "EnvFault",
    "__version__",
]


def __getattr__(name: str):
    if name == "Policy":  # imported on first use: `import differ` stays light (no torch)
        from .policy import Policy

        return Policy
    raise AttributeError(f"module 'differ' has no attribute '{name}'")
