#!/usr/bin/env bash
# `make demo`: plan an example, bring it up for real (as root), show it, and take it down again.
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-examples/three-tier}
cn() { .venv/bin/compose-net -f "$example/compose.yml" -p demo "$@"; }

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
first=$(.venv/bin/compose-net -p demo ps --format json | .venv/bin/python -c 'import json,sys; c=json.load(sys.stdin); print(c[0]["service"] if c else "")')
if [ -n "$first" ]; then
    echo "== compose-net exec $first -- ip -br addr"
    cn exec "$first" -- ip -br addr
    echo "== compose-net exec $first -- cat /etc/resolv.conf /etc/hosts"
    cn exec "$first" -- cat /etc/resolv.conf /etc/hosts
fi
