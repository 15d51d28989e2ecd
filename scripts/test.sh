#!/usr/bin/env bash
# The whole test suite: lint, format, types, fast unit tests and the tests that run real jobs on the local SLURM cluster.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slurm"`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ORCA_HPC_VENV:-$ROOT/.venv}
bash "$ROOT/scripts/bootstrap.sh"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
echo "[test] ruff check"
ruff check .
echo "[test] ruff format --check"
ruff format --check .
echo "[test] mypy"
mypy
if [ "$#" -gt 0 ]; then
    echo "[test] pytest $*"
    exec python -m pytest "$@"
fi
# Two workers: the cluster's tests one after another in one (they mostly wait for the cluster: see
# tests/conftest.py), the others beside them. The tests that stop or restart the cluster's daemons
# would pull the cluster from under every other test, so they run alone, after.
echo "[test] pytest, 2 workers (all but the disruptive tests)"
python -m pytest -n 2 --dist loadgroup -m "not disruptive"
echo "[test] pytest, alone (tests that stop or restart the cluster's daemons)"
exec python -m pytest -m disruptive
