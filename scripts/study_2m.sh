#!/usr/bin/env bash
# The 2M-step study of docs/results.md (QMIX vs QMIX-DIFFER on SMAX 3s5z_vs_3s6z, issue 29).
# Run it from the study's pinned worktree, with that worktree's environment on PATH or as
# DIFFER (default: ./.venv/bin/differ). Re-run the same command after any interruption: every
# run resumes exactly from its latest checkpoint; finished runs are skipped.
#   bash scripts/study_2m.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: study_2m.sh OUT_DIR}
DIFFER=${DIFFER:-./.venv/bin/differ}
COMMON=(env=smax env.scenario=3s5z_vs_3s6z t_max=2005000 torch_threads=1 checkpoint_interval=50000
        algo.fused_gru=true algo.skip_padding=true workers=2 "out=$OUT")
# seeds 1-5 of all three arms first: the interim look (futility only) and the -divide check
"$DIFFER" sweep seed=1,2,3,4,5 algo=qmix,qmix_differ,qmix_divide "${COMMON[@]}"
# seeds 6-10 of the two compared arms (skipped if the interim look stopped the study: see docs/results.md)
if [ ! -e "$OUT/STOPPED_FOR_FUTILITY" ]; then
  "$DIFFER" sweep seed=6,7,8,9,10 algo=qmix,qmix_differ "${COMMON[@]}"
fi
