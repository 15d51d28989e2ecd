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
echo "[test] pytest"
exec python -m pytest "$@"
