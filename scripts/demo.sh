#!/usr/bin/env bash
# The demo, end to end: the real local SLURM cluster, the ORCA emulator, a campaign of the molecules in
# examples/, reconciled until every job has finished (one of them needs two automatic SCF recoveries).
# Usage: scripts/demo.sh [CAMPAIGN_DIR]   (default: ./demo-campaign, replaced if it is an earlier demo)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ORCA_HPC_VENV:-$ROOT/.venv}
DEMO=${1:-$ROOT/demo-campaign}

bash "$ROOT/scripts/bootstrap.sh"
export PATH="$VENV/bin:$PATH"

if [ -e "$DEMO" ]; then
    if grep -qs '^name = "orca-hpc-demo"$' "$DEMO/orca-hpc.toml"; then
        rm -rf "$DEMO"
    else
        echo "demo: $DEMO exists and is not an earlier demo campaign; pass another folder" >&2
        exit 1
    fi
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "orca-hpc init $DEMO --site local-slurm"
orca-hpc init "$DEMO" --site local-slurm --name orca-hpc-demo
cd "$DEMO"
step "orca-hpc submit examples/*.inp and an .xyz with a method preset"
orca-hpc submit "$ROOT"/examples/*.inp
orca-hpc submit --method "r2SCAN-3c Opt" "$ROOT/examples/ammonia.xyz"
step "orca-hpc watch --until-done (reconcile every 2 s)"
timeout 600 orca-hpc watch --interval 2 --until-done
step "orca-hpc status"
orca-hpc status --no-reconcile
step "orca-hpc show ethylene_hard_scf (recovered automatically)"
orca-hpc show --no-reconcile ethylene_hard_scf
step "orca-hpc results"
orca-hpc results --no-reconcile
# The demo succeeds only if every job completed.
orca-hpc status --no-reconcile --json | python3 -c '
import json, sys
counts = json.load(sys.stdin)["counts"]
print(f"\ndemo: {counts}")
sys.exit(0 if set(counts) == {"COMPLETED"} else 1)'
