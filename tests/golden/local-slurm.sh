#!/bin/bash
#SBATCH --job-name=ohpc-0123456789abcdef
#SBATCH --partition=debug
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=1
#SBATCH --mem=7500M
#SBATCH --time=00:30:00
#SBATCH --output=/home/alice/water/.orca-hpc/submitit/%A_%a.out
#SBATCH --error=/home/alice/water/.orca-hpc/submitit/%A_%a.out
#SBATCH --array=0-11
#SBATCH --signal=B:USR1@30
#SBATCH --no-requeue
# Rendered by orca-hpc for site local-slurm. Change the site config or its templates, not this file.
runner_pid=""
trap 'if [ -n "$runner_pid" ]; then kill -USR1 "$runner_pid" 2>/dev/null; fi' USR1
trap 'if [ -n "$runner_pid" ]; then kill -TERM "$runner_pid" 2>/dev/null; else exit 143; fi' TERM

# --- environment ---
export ORCA_HPC_LOG_LEVEL=info
export PYTHONUNBUFFERED=1

# --- scratch ---
# The runner makes its own folder under the site's scratch root and removes it afterwards;
# a site template can prepare the scratch file system here.

# --- run ---
PYTHON=/home/alice/.venv/bin/python3
MANIFEST=/home/alice/water/.orca-hpc/arrays/array-0001.txt
export ORCA_HPC_CAMPAIGN_DIR=/home/alice/water
cd "$ORCA_HPC_CAMPAIGN_DIR" || exit 1
"$PYTHON" -m orca_hpc.runner --manifest "$MANIFEST" --index "${SLURM_ARRAY_TASK_ID:-0}" &
runner_pid=$!
# wait returns early when a trapped signal arrives: keep waiting for the runner
while true; do wait "$runner_pid"; rc=$?; kill -0 "$runner_pid" 2>/dev/null || break; done

# --- copy back ---
# The runner copies results back itself (also on SIGUSR1 before the time limit); site hooks go here.
exit "$rc"
