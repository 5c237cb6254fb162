#!/bin/bash
# A SLURM job array over one differ sweep grid (docs/experiments.md, "SLURM job arrays"): task K
# runs run K of the grid alone, with the sweep's skip and exact resume, so a resubmitted or
# requeued array goes on where each run stopped. `differ sweep $GRID list=true` shows the grid
# (how many tasks: its last index + 1) and each run's state.
#   sbatch --array=0-11 scripts/slurm_array.sh
#SBATCH --job-name=differ-grid
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
set -euo pipefail
GRID=${GRID:-"seed=1,2,3 algo=qmix,qmix_differ env.scenario=3m,3s5z t_max=2005000 out=sweeps/grid"}
DIFFER=${DIFFER:-differ}
# SIGTERM (pre-emption, the time limit's warning) stops the run at the end of its batch with a
# checkpoint; the requeued task resumes it exactly
exec $DIFFER sweep $GRID "index=${SLURM_ARRAY_TASK_ID:?set by sbatch --array}"
