#!/usr/bin/env bash
# Guard runs: small runs of several envs and algorithms whose metrics.jsonl must not change under
# a refactor. Run them with the code before and after a change, then compare:
#   git worktree add /tmp/before <commit>
#   bash scripts/guard_runs.sh /tmp/before /tmp/g_before env.reward_scale=1
#   bash scripts/guard_runs.sh "$PWD" /tmp/g_after env.reward_scale=1
#   .venv/bin/python scripts/compare_metrics.py /tmp/g_before /tmp/g_after
# SRC: the source tree to run (put on PYTHONPATH); OUT: where the run directories go; any further
# arguments go to the SMAX runs (e.g. env.reward_scale=1, or nothing for the default scale).
set -uo pipefail
SRC=$(cd "$1" && pwd); OUT=$2; shift 2
PY=${PY:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
mkdir -p "$OUT" && cd "$OUT" || exit 1
export PYTHONPATH=$SRC
T=(test_episodes=2 algo.batch_size=4 algo.buffer_size=50 test_interval=500 log_interval=500 torch_threads=1 progress=false)
run() { local dir=$1; shift; "$PY" -m differ train "$@" "${T[@]}" "run_dir=$dir" > "$dir.log" 2>&1 || echo "guard: $dir failed (see $OUT/$dir.log)"; }
run smax_qd algo=qmix_differ env=smax env.scenario=3m env.num_envs=2 env.test_num_envs=2 t_max=3000 seed=2 "$@"
run smax_qdiv algo=qmix_divide env=smax env.scenario=2s3z env.num_envs=2 env.test_num_envs=2 t_max=2000 seed=1 "$@"
run lbf_qd algo=qmix_differ env=lbf env.time_limit=20 t_max=3000 seed=2
run lbf_qpd algo=qplex_differ env=lbf env.time_limit=20 t_max=2000 seed=3
run lbf_maser algo=maser env=lbf env.time_limit=20 t_max=2000 seed=3
run lbf_fused algo=qmix_differ env=lbf env.time_limit=20 t_max=3000 seed=4 algo.fused_gru=true
run mpe_vd algo=vdn_differ env=mpe t_max=2000 seed=1
run mj_cd algo=comix_differ env=mamujoco env.scenario=ManySegmentSwimmer-10x2 env.time_limit=50 t_max=1000 seed=1
if "$PY" -c "import gfootball" 2>/dev/null; then
  run grf_qd algo=qmix_differ env=grf env.time_limit=50 env.num_envs=2 t_max=1000 seed=1
fi
echo "guard runs in $OUT"
