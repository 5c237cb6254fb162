"""differ: value-factorisation MARL (VDN, QMIX, QPLEX, MASER) and DIFFER's fair individual replay.

    import differ
    run = differ.train(algo="qmix_differ", env="lbf", t_max=20_000, run_dir="runs/demo")
    differ.evaluate(run.run_dir, episodes=32)

docs/api.md describes the API; the command line (`differ --help`) does the same things.
"""

from .api import TrainResult, evaluate, train
from .errors import CheckpointError, ConfigError, DifferError, TrainingDiverged

__version__ = "0.2.0"
__all__ = ["train", "evaluate", "TrainResult", "DifferError", "ConfigError", "CheckpointError",
           "TrainingDiverged", "__version__"]
