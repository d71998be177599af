#!/usr/bin/env bash
# `make demo`: plan an example, bring it up for real (as root), show it, and take it down again.
# DEMO_PROJECT names the project (default `demo`): tests run the demo under a unique name.
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-examples/three-tier}
project=${DEMO_PROJECT:-demo}
cn() { .venv/bin/compose-net -f "$example/compose.yml" -p "$project" "$@"; }

echo "== compose-net up --dry-run ($example)"
cn up --dry-run
if [ "$(id -u)" -ne 0 ]; then
    echo "(not root: stopping after the plan; run as root to bring it up)"
    exit 0
fi
trap 'echo "== compose-net down"; cn down --progress' EXIT
echo "== compose-net up"
cn up --progress
echo "== compose-net ps"
cn ps
echo "== compose-net network ls"
.venv/bin/compose-net network ls
# `ps --format json` uses Docker's key names (Name, Service, ...)
first=$(cn ps --format json | .venv/bin/python -c '
import json, sys
containers = json.load(sys.stdin)
print(containers[0]["Service"] if containers else "")')
if [ -z "$first" ]; then
    echo "demo: ps lists no container of project $project" >&2
    exit 1
fi
echo "== compose-net exec $first -- ip -br addr"
cn exec "$first" -- ip -br addr
echo "== compose-net exec $first -- cat /etc/resolv.conf /etc/hosts"
cn exec "$first" -- cat /etc/resolv.conf /etc/hosts
