#!/usr/bin/env bash
# Copy the small files of every finished run (config.yaml, metrics.jsonl, result.json) from a sweep
# or runs directory into DEST, so `differ plot / summary / analyze` can be re-run on them after the
# checkpoints and replay chunks are gone:  bash scripts/archive_runs.sh sweeps/study docs/study/runs
set -euo pipefail
src=${1:?usage: archive_runs.sh SRC_DIR DEST_DIR}
dest=${2:?usage: archive_runs.sh SRC_DIR DEST_DIR}
n=0
for run in "$src"/*/; do
  # only runs that reached their t_max (a stopped run's result.json says stopped_early: true)
  grep -q '"stopped_early": false' "$run/result.json" 2>/dev/null || continue
  name=$(basename "$run")
  mkdir -p "$dest/$name"
  cp "$run/config.yaml" "$run/metrics.jsonl" "$run/result.json" "$dest/$name/"
  n=$((n + 1))
done
echo "archived $n finished runs from $src into $dest"
