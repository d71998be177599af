#!/usr/bin/env bash
# `make bench`: install the peers and run every benchmark (as root), one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v dnsperf >/dev/null || need+=(dnsperf)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
.venv/bin/python bench/plan_scale.py
flock /tmp/compose-net-kernel-tests.lock .venv/bin/python bench/updown.py
flock /tmp/compose-net-kernel-tests.lock .venv/bin/python bench/dns.py
.venv/bin/python bench/reconcile.py
.venv/bin/python bench/reach.py  # takes the kernel-test lock itself for its verify part
.venv/bin/python bench/connect.py  # takes the kernel-test lock itself
.venv/bin/python bench/overlay.py  # takes the kernel-test lock itself; etcd comes from `make setup`
