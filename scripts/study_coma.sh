#!/usr/bin/env bash
# COMA's evidence runs of docs/results.md (issue 31), from a pinned worktree like the 2M-step study's:
#   1. COMA on SMAX 3s5z_vs_3s6z at the 2M-step study's settings (the same budget, reward scale,
#      test protocol and speed options), seeds 1-5, compared with that study's QMIX and QMIX-DIFFER;
#   2. the sanity check that it learns where PyMARL's COMA learns: coma, qmix and qmix_differ on
#      LBF Foraging-8x8-2p-3f and SMAX 3m (200k steps each), seeds 1-5.
# Re-run the same command after any interruption: every run resumes exactly; finished runs are skipped.
#   bash scripts/study_coma.sh OUT_DIR [study|sanity|all]
set -euo pipefail
OUT=${1:?usage: study_coma.sh OUT_DIR [study|sanity|all]}
PART=${2:-all}
DIFFER=${DIFFER:-./.venv/bin/differ}
# WORKERS=1 runs one run at a time (beside the 2M-step study's two); the default is two.
RUN=(torch_threads=1 checkpoint_interval=50000 "workers=${WORKERS:-2}")
if [ "$PART" = sanity ] || [ "$PART" = all ]; then
  "$DIFFER" sweep seed=1,2,3,4,5 algo=coma,qmix,qmix_differ env=lbf t_max=200000 "${RUN[@]}" "out=$OUT/sanity_lbf"
  "$DIFFER" sweep seed=1,2,3,4,5 algo=coma,qmix,qmix_differ env=smax env.scenario=3m t_max=200000 "${RUN[@]}" "out=$OUT/sanity_3m"
fi
if [ "$PART" = study ] || [ "$PART" = all ]; then
  "$DIFFER" sweep seed=1,2,3,4,5 algo=coma env=smax env.scenario=3s5z_vs_3s6z t_max=2005000 \
    algo.fused_gru=true algo.skip_padding=true "${RUN[@]}" "out=$OUT/3s5z_vs_3s6z"
fi
