#!/usr/bin/env python3
"""Attach/detach cost per container: compose-net against its peers, on one topology.

N containers (N = 10, 50, 100, 1000), each on network 1 and every second one also on network 2
(1.5 veth pairs per container); from N > 100 on, the containers are spread over N/50 networks
(1,000 over 20) in pairs the same way (container i on pair i mod N/100), built by
  compose-net   `python -m compose_net up` / `down` as processes (process start, loading,
                planning, namespaces, firewall table and DNS server included), and the same plan
                applied in-process by `executor.up` / `executor.down` (the executor alone);
  naive ip      a shell script of `ip` commands, one process per command;
  ip -batch     the host side in one `ip -batch` process and each container's side in one
                `ip -n NS -batch` process (iproute2 cannot switch namespaces inside one batch);
  netavark      `netavark setup` / `teardown` per container, as Podman drives it (DNS off).
The peers run inside a namespace made for the benchmark (their "host"), so the machine's own
network is never touched; their container namespaces are made with `ip netns add` outside the
timed part, and that cost is printed on its own line.

Prints ms per container (attach / detach), the ratios to compose-net, the cost per added
container between N=10 and N=100, and the whole `up` of 100 containers. Holds the kernel-test
lock (/tmp/compose-net-kernel-tests.lock) unless a parent process (`flock ... bench/updown.py`)
already does. Sizes above 100 run once per approach and without netavark (about 0.1 s per container
each way, minutes at N=1000) unless `--netavark-all`.
Usage: bench/updown.py [--repeats R] [--sizes 10,50,100,1000] [--skip-netavark] [--netavark-all]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import kernel_lock  # noqa: E402

NETAVARK = "/usr/lib/podman/netavark"
AARDVARK = "/usr/lib/podman/aardvark-dns"
BIG = 100  # above this many containers, more networks, one run each
PY = sys.executable


# --- helpers -------------------------------------------------------------------------------


def run(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
    return proc


def settle() -> None:
    """Let the kernel finish freeing the previous run's namespaces (it does so asynchronously,
    under the same RTNL lock the next run needs), so runs do not pay for each other."""
    time.sleep(1.0)


def network_count(n: int) -> int:
    return 2 if n <= BIG else max(2, n // 50 // 2 * 2)


def subnet(k: int) -> str:
    """Network k's subnet (1-based): 10.210.0.0/16, 10.211.0.0/16, ..."""
    return f"10.{209 + k}.0.0/16"


def topology(n: int):
    """(container index, [network numbers, 1-based]) for the benchmark shape."""
    pairs = network_count(n) // 2
    out = []
    for i in range(n):
        first = 2 * (i % pairs) + 1
        out.append((i, [first, first + 1] if i % 2 else [first]))
    return out


def addr(net: str, i: int) -> str:
    base = net.split(".")
    host = i + 2
    return f"{base[0]}.{base[1]}.{host // 256}.{host % 256}"


# --- compose-net ---------------------------------------------------------------------------

def compose_file(directory: Path, n: int) -> Path:
    lines = ["services:"]
    for i, nets in topology(n):
        lines.append(f"  c{i}: {{image: x, networks: [{', '.join(f'n{k}' for k in nets)}]}}")
    lines.append("networks:")
    for k in range(1, network_count(n) + 1):
        lines.append(f"  n{k}: {{ipam: {{config: [{{subnet: {subnet(k)}}}]}}}}")
    path = directory / "compose.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ours_cli(directory: Path, n: int) -> tuple[float, float]:
    project = "bu" + uuid.uuid4().hex[:6]
    path = compose_file(directory, n)
    t = time.perf_counter()
    run(PY, "-m", "compose_net", "-p", project, "-f", str(path), "up", "--quiet")
    up = time.perf_counter() - t
    t = time.perf_counter()
    run(PY, "-m", "compose_net", "-p", project, "down", "--quiet")
    return up, time.perf_counter() - t


def ours_lib(directory: Path, n: int) -> tuple[float, float, dict]:
    """The executor alone, on the plan the CLI would make; per op kind, where the time went."""
    from compose_net import executor, state
    from compose_net.executor import apply as A
    from compose_net.loader import LoadOptions, load
    from compose_net.plan.planner import plan_up
    from compose_net.probe import probe_host

    project = "bl" + uuid.uuid4().hex[:6]
    path = compose_file(directory, n)
    result = load(LoadOptions(files=(str(path),), project_name=project))
    with state.host_lock():
        plan = plan_up(result.project, probe_host())
        split: dict[str, float] = {}
        handlers = dict(A.HANDLERS)
        for kind in ("dns_start", "dns_stop", "nft_apply", "nft_delete"):
            def timed(ap, seq, op, _h=handlers[kind], _k=kind):
                t0 = time.perf_counter()
                _h(ap, seq, op)
                split[_k] = split.get(_k, 0.0) + time.perf_counter() - t0
            A.HANDLERS[kind] = timed
        try:
            t = time.perf_counter()
            executor.up(plan)
            up = time.perf_counter() - t
            t = time.perf_counter()
            executor.down(project)
            down = time.perf_counter() - t
        finally:
            A.HANDLERS.update(handlers)
    return up, down, split


# --- peers ---------------------------------------------------------------------------------


class PeerHost:
    """A namespace standing in for the host, plus N container namespaces, for the peers."""

    def __init__(self, n: int):
        self.networks = network_count(n)
        self.tag = uuid.uuid4().hex[:5]
        self.host = f"bh{self.tag}"
        self.containers = [f"bc{self.tag}-{i}" for i in range(n)]
        self.ns_seconds = 0.0

    def __enter__(self) -> "PeerHost":
        run("ip", "netns", "add", self.host)
        run("ip", "-n", self.host, "link", "set", "lo", "up")
        t = time.perf_counter()
        for ns in self.containers:
            run("ip", "netns", "add", ns)
        self.ns_seconds = time.perf_counter() - t
        return self

    def __exit__(self, *exc) -> None:
        for ns in self.containers + [self.host]:
            run("ip", "netns", "del", ns, check=False)

    def sh(self, script: str) -> None:
        # on stdin: the script of N=1000 is longer than an argument may be
        run("ip", "netns", "exec", self.host, "bash", "-e", "-s", stdin=script)


def _bridges(peer: PeerHost) -> list[tuple[str, str]]:
    """(bridge, subnet) of network k at index k - 1."""
    return [(f"b{k}{peer.tag}", subnet(k)) for k in range(1, peer.networks + 1)]


def naive_script(peer: PeerHost) -> tuple[str, str]:
    up, down = [], []
    bridges = _bridges(peer)
    for br, net in bridges:
        gw = addr(net, -1)
        up += [f"ip link add {br} type bridge", f"ip addr add {gw}/16 dev {br}", f"ip link set {br} up"]
    for i, nets in topology(len(peer.containers)):
        ns = peer.containers[i]
        up.append(f"ip -n {ns} link set lo up")
        for k, net_key in enumerate(nets):
            br, net = bridges[net_key - 1]
            host, tmp = f"v{k}{peer.tag}{i}", f"t{k}{peer.tag}{i}"
            up += [
                f"ip link add {host} type veth peer name {tmp}",
                f"ip link set {tmp} netns {ns}",
                f"ip link set {host} master {br} up",
                f"ip -n {ns} link set {tmp} name eth{k}",
                f"ip -n {ns} addr add {addr(net, i)}/16 dev eth{k}",
                f"ip -n {ns} link set eth{k} up",
            ]
            if k == 0:
                up.append(f"ip -n {ns} route add default via {addr(net, -1)}")
            down.append(f"ip link del {host}")
    down += [f"ip link del {br}" for br, _ in bridges]
    return "\n".join(up), "\n".join(down)


def batch_scripts(peer: PeerHost) -> tuple[str, dict[str, str], str]:
    host, per_ns, down = [], {}, []
    bridges = _bridges(peer)
    for br, net in bridges:
        host += [f"link add {br} up type bridge", f"addr add {addr(net, -1)}/16 dev {br}"]
    for i, nets in topology(len(peer.containers)):
        ns = peer.containers[i]
        lines = ["link set lo up"]
        for k, net_key in enumerate(nets):
            br, net = bridges[net_key - 1]
            name = f"v{k}{peer.tag}{i}"
            host.append(f"link add {name} master {br} up type veth peer name eth{k} netns {ns}")
            lines += [f"link set eth{k} up", f"addr add {addr(net, i)}/16 dev eth{k}"]
            if k == 0:
                lines.append(f"route add default via {addr(net, -1)}")
            down.append(f"link del {name}")
        per_ns[ns] = "\n".join(lines) + "\n"
    down += [f"link del {br}" for br, _ in bridges]
    return "\n".join(host) + "\n", per_ns, "\n".join(down) + "\n"


def naive(n: int) -> tuple[float, float, float]:
    with PeerHost(n) as peer:
        up, down = naive_script(peer)
        t = time.perf_counter()
        peer.sh(up)
        a = time.perf_counter() - t
        t = time.perf_counter()
        peer.sh(down)
        return a, time.perf_counter() - t, peer.ns_seconds


def ip_batch(n: int) -> tuple[float, float, float]:
    with PeerHost(n) as peer:
        host, per_ns, down = batch_scripts(peer)
        t = time.perf_counter()
        run("ip", "-n", peer.host, "-batch", "-", stdin=host)
        for ns, lines in per_ns.items():
            run("ip", "-n", ns, "-batch", "-", stdin=lines)
        a = time.perf_counter() - t
        t = time.perf_counter()
        run("ip", "-n", peer.host, "-batch", "-", stdin=down)
        return a, time.perf_counter() - t, peer.ns_seconds


def _netavark_opts(peer: PeerHost, i: int, nets: list[str]) -> str:
    networks, info = {}, {}
    for k, key in enumerate(nets):
        br, net = _bridges(peer)[key - 1]
        name = f"bn{key}{peer.tag}"
        networks[name] = {"interface_name": f"eth{k}", "static_ips": [addr(net, i)]}
        info[name] = {
            "name": name, "id": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex * 2, "driver": "bridge",
            "network_interface": br,
            "subnets": [{"subnet": net, "gateway": addr(net, -1)}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": False,
            "ipam_options": {"driver": "host-local"},
        }
    return json.dumps({
        "container_id": f"{peer.tag}{i:059d}", "container_name": f"c{i}",
        "networks": networks, "network_info": info,
    })


def netavark(n: int) -> tuple[float, float, float]:
    with PeerHost(n) as peer, tempfile.TemporaryDirectory() as conf:
        opts = {i: _netavark_opts(peer, i, nets) for i, nets in topology(n)}
        base = ["ip", "netns", "exec", peer.host, NETAVARK, "--config", conf, "--aardvark-binary", AARDVARK]
        t = time.perf_counter()
        for i, ns in enumerate(peer.containers):
            run(*base, "setup", f"/run/netns/{ns}", stdin=opts[i])
        a = time.perf_counter() - t
        t = time.perf_counter()
        for i, ns in enumerate(peer.containers):
            run(*base, "teardown", f"/run/netns/{ns}", stdin=opts[i])
        return a, time.perf_counter() - t, peer.ns_seconds


# --- report --------------------------------------------------------------------------------


def best_runs(fn, n: int, repeats: int):
    """The best of `repeats` runs, field by field: other processes on the machine only ever add
    time, so the minimum is the closest to what the code itself costs."""
    runs = []
    for _ in range(repeats):
        settle()
        runs.append(fn(n))
    return tuple(min(r[k] for r in runs) for k in range(len(runs[0]))), runs


def _cell(row: dict, n: int) -> str:
    if n not in row:
        return f"{'-':>8} /{'-':>7}"
    return f"{row[n][0] / n * 1000:8.2f} /{row[n][1] / n * 1000:7.2f}"


def _added(row: dict, lo: int, hi: int) -> Optional[tuple[float, float]]:
    """ms per container added between N=lo and N=hi (up, down), when both were measured."""
    if lo not in row or hi not in row:
        return None
    return tuple((row[hi][k] - row[lo][k]) / (hi - lo) * 1000 for k in (0, 1))  # type: ignore[return-value]


def report(table: dict, ns_cost: dict, splits: dict, sizes: list[int], repeats: int) -> None:
    ref = "compose-net (CLI processes)"
    print(f"\nattach / detach, ms per container (best of {repeats}; N > {BIG}: one run, N/50 networks);"
          f" peers exclude namespace creation\n")
    print(f"{'approach':38}" + "".join(f"{'N=' + str(n):>17}" for n in sizes))
    for name, row in table.items():
        print(f"{name:38}" + "".join(_cell(row, n) for n in sizes))
    print(f"{'(ip netns add, for the peers)':38}" + "".join(
        f"{ns_cost[n] / n * 1000:8.2f} /{'':>7}" if n in ns_cost else f"{'-':>17}" for n in sizes))
    spans = [(a, b) for a, b in zip(sizes, sizes[1:])]
    small = [n for n in sizes if n <= BIG]
    if len(small) > 1 and (small[0], small[-1]) not in spans:
        spans.insert(0, (small[0], small[-1]))
    for lo, hi in spans:
        base = _added(table[ref], lo, hi)
        if base is None:
            continue
        print(f"\ncost per added container between N={lo} and N={hi} (ms), and ratio to compose-net CLI:")
        for name, row in table.items():
            cost = _added(row, lo, hi)
            if cost is None:
                continue
            extra = "" if name.startswith("compose-net") or lo not in ns_cost or hi not in ns_cost else \
                f"   (+{(ns_cost[hi] - ns_cost[lo]) / (hi - lo) * 1000:.1f} ms namespaces)"
            print(f"  {name:38} up {cost[0]:6.2f}  x{cost[0] / base[0]:5.1f}"
                  f"   down {cost[1]:6.2f}  x{cost[1] / base[1]:5.1f}{extra}")
    print("  targets: up <= 3 ms, down <= 1.5 ms per added container, flat up to N=1000")
    for n, target in ((100, "up < 1 s"), (1000, "up < 3 s, down < 1.5 s")):
        if n in table[ref]:
            print(f"whole `up` of {n} containers, process start included: {table[ref][n][0]:.2f} s;"
                  f" `down`: {table[ref][n][1]:.2f} s (target {target})")
    for n in sizes:
        if splits.get(n):
            print(f"  N={n}: in-process executor time (median) in " +
                  ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in splits[n].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,100,1000")
    parser.add_argument("--skip-netavark", action="store_true")
    parser.add_argument("--netavark-all", action="store_true", help="netavark at N > 100 too (minutes)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/updown.py needs root", file=sys.stderr)
        return 1
    sizes = [int(x) for x in args.sizes.split(",")]
    lock = kernel_lock()
    approaches = {
        "compose-net (CLI processes)": None,
        "compose-net executor (in-process)": None,
        "naive ip script": naive,
        "ip -batch": ip_batch,
    }
    if not args.skip_netavark and os.access(NETAVARK, os.X_OK):
        approaches["netavark 1.4 (per container)"] = netavark
    table: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in approaches}
    ns_cost: dict[int, float] = {}
    splits: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in sizes:
            repeats = args.repeats if n <= BIG else 1
            (u, dn), _ = best_runs(lambda n: ours_cli(d, n), n, repeats)
            table["compose-net (CLI processes)"][n] = (u, dn)
            lib_runs = []
            for _ in range(repeats):
                settle()
                lib_runs.append(ours_lib(d, n))
            table["compose-net executor (in-process)"][n] = (min(r[0] for r in lib_runs), min(r[1] for r in lib_runs))
            splits[n] = {k: statistics.median(r[2].get(k, 0.0) for r in lib_runs) for k in lib_runs[0][2]}
            for name, fn in approaches.items():
                if fn is None or (fn is netavark and n > BIG and not args.netavark_all):
                    continue
                (a, dt, nss), _ = best_runs(fn, n, repeats)
                table[name][n] = (a, dt)
                ns_cost[n] = nss
    lock.close()
    report(table, ns_cost, splits, sizes, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
