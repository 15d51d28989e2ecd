#!/usr/bin/env bash
# Makes a fresh Debian 12 machine (as root) ready for orca-hpc: a virtual environment with the package
# and its test tools in .venv, and the local one-node SLURM cluster running. Safe to run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ORCA_HPC_VENV:-$ROOT/.venv}
log() { printf '[bootstrap] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        log "python3 cannot make a venv here: installing python3-venv"
        rm -rf "$VENV"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
        python3 -m venv "$VENV"
    fi
    log "created $VENV"
fi
# Reinstall only when the package metadata changed: an editable install picks up code changes by itself.
stamp="$VENV/.orca-hpc-installed"
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c 'import orca_hpc' 2>/dev/null; then
    log "installing orca-hpc and its test tools into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$want" > "$stamp"
fi

# systemd-analyze checks the shipped units in the tests (binaries only: it does not become PID 1 here).
if ! command -v systemd-analyze >/dev/null 2>&1; then
    log "installing systemd (for systemd-analyze)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

bash "$ROOT/scripts/local-slurm.sh" start
