"""Compare the guard runs of two directories (scripts/guard_runs.sh): every run's metrics.jsonl
must be identical, but for the wall-clock keys and keys that only one side logs.
usage: python scripts/compare_metrics.py BEFORE AFTER"""

import json
import sys
from pathlib import Path

IGNORED = {"steps_per_s", "time_s"}


def records(path: Path) -> list[dict] | None:
    f = path / "metrics.jsonl"
    if not f.exists():
        return None
    return [{k: v for k, v in json.loads(line).items() if k not in IGNORED} for line in f.read_text().splitlines()]


def main(before: Path, after: Path) -> int:
    ok = True
    for name in sorted(p.name for p in before.iterdir() if p.is_dir()):
        a, b = records(before / name), records(after / name)
        if a is None or b is None:
            print(f"{name}: missing on the {'before' if a is None else 'after'} side")
            ok = False
            continue
        shared = set().union(*map(set, a)) & set().union(*map(set, b))
        same = len(a) == len(b) and all(
            {k: x.get(k) for k in shared} == {k: y.get(k) for k in shared} for x, y in zip(a, b)
        )
        print(f"{name}: {len(a)} records, {'identical' if same else 'DIFFERENT'}")
        ok &= same
    print("all identical" if ok else "differences")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
