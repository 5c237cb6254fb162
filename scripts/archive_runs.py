"""Copy the small files of every finished run (config.yaml, metrics.jsonl, result.json) from a sweep
or runs directory into DEST, so `differ plot / summary / analyze` can be re-run on them after the
checkpoints and replay chunks are gone:

    python scripts/archive_runs.py sweeps/study docs/study/runs

"Finished" is the rule `plot` and `summary` use (`Run.finished`: it logged its t_max).
"""

import shutil
import sys
from pathlib import Path

from differ.experiments.results import find_runs

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: archive_runs.py SRC_DIR DEST_DIR")
    src, dest = sys.argv[1], Path(sys.argv[2])
    done = [r for r in find_runs([src]) if r.finished]
    for r in done:
        (dest / r.path.name).mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "metrics.jsonl", "result.json"):
            shutil.copy2(r.path / name, dest / r.path.name / name)
    print(f"archived {len(done)} finished runs from {src} into {dest}")
