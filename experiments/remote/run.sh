#!/usr/bin/env bash
# The quickstart on NNI's remote training service across two SSH hosts made on this machine:
# set the hosts up (hosts.sh), run the local and remote experiments (run_remote.py: trials per
# host, wall time against local, best exported), check, tear the hosts down even on failure.
# Exit status non-zero when a trial failed or a host ran none. Needs root (network namespaces).
#   bash experiments/remote/run.sh [--trials N] [--no-local] [--no-reuse] [--out DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
trap 'bash "$HERE/hosts.sh" down >/dev/null 2>&1 || true' EXIT
bash "$HERE/hosts.sh" up
python3 "$HERE/run_remote.py" "$@"
