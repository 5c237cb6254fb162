"""What a run leaves on disk: the run directory and every file name in it (`rundir.py`), its lock,
checkpoints written atomically, and the metrics."""
