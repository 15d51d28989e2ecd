#!/usr/bin/env bash
# The workflow demo, end to end: the real local SLURM cluster, the ORCA emulator, a campaign whose
# molecules each go through r2SCAN-3c Opt Freq (gate: no imaginary mode) then a wB97M-V single point
# (the `opt-freq-sp` preset). Three molecules from examples/: butane with two conformers (anti and
# gauche, a multi-frame .xyz), ammonia, and ethylene, whose single point needs an automatic SCF
# recovery on the way.
# Usage: scripts/demo-workflow.sh [CAMPAIGN_DIR]   (default: ./demo-workflow, replaced if an earlier demo)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ORCA_HPC_VENV:-$ROOT/.venv}
DEMO=${1:-$ROOT/demo-workflow}

bash "$ROOT/scripts/bootstrap.sh"
export PATH="$VENV/bin:$PATH"

if [ -e "$DEMO" ]; then
    if grep -qs '^name = "orca-hpc-workflow-demo"$' "$DEMO/orca-hpc.toml"; then
        rm -rf "$DEMO"
    else
        echo "demo: $DEMO exists and is not an earlier workflow demo campaign; pass another folder" >&2
        exit 1
    fi
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "orca-hpc init $DEMO --site local-slurm --workflow opt-freq-sp"
orca-hpc init "$DEMO" --site local-slurm --name orca-hpc-workflow-demo --workflow opt-freq-sp
cd "$DEMO"
step "orca-hpc submit: molecules in, each conformer's first step out (one array)"
orca-hpc submit "$ROOT"/examples/workflow/*.xyz "$ROOT/examples/ammonia.xyz"
step "orca-hpc watch --until-done (reconcile every 2 s: each completed step makes the next)"
timeout 600 orca-hpc watch --interval 2 --until-done
step "orca-hpc status"
orca-hpc status --no-reconcile
step "orca-hpc show ethylene.c1.sp (recovered automatically)"
orca-hpc show --no-reconcile ethylene.c1.sp
step "orca-hpc results"
orca-hpc results --no-reconcile
step "orca-hpc results --by molecule (composite free energies, Boltzmann weights over conformers)"
orca-hpc results --no-reconcile --by molecule
# The demo succeeds only if every step of every molecule completed, each exactly once.
orca-hpc show --no-reconcile --json --all | python3 -c '
import datetime, json, sys
jobs = json.load(sys.stdin)["jobs"]
by_id = {j["id"]: j for j in jobs}
steps = [(j["chain"]["molecule"], j["chain"]["conformer"], j["chain"]["step"]) for j in jobs]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
waits = [(t(j["attempts"][0]["submitted"]) - t(by_id[j["chain"]["after"]]["attempts"][-1]["ended"])).total_seconds()
         for j in jobs if j["chain"]["after"]]
print(f"\ndemo: {len(jobs)} step jobs, {len(set(steps))} distinct (molecule, conformer, step)")
print(f"demo: predecessor ended -> next step submitted: {min(waits):.0f}-{max(waits):.0f} s (reconcile interval 2 s)")
ok = len(steps) == len(set(steps)) == 8 and {j["state"] for j in jobs} == {"COMPLETED"}
sys.exit(0 if ok else 1)'
