#!/usr/bin/env python3
"""How fast an overlay network across hosts converges, and how fast a new endpoint is reachable.

N simulated hosts (tests/kernel/simhosts.py: a network + mount namespace each, one underlay
bridge, etcd on host 1) run one project with one `driver: overlay` network `app`; host k runs
service `sK` with C replicas (`compose-net -p P -f F up sK`, containers P-sK-1..C).

  converged      every host's `up` starts at the same moment (t0). As soon as host k's `up`
                 returns, a probe agent (bench/overlay_agent.py) starts inside P-sK-1 and, for
                 every other host j, resolves `sJ` (service name) and `P-sJ-1` (container name)
                 through the container's resolv.conf and pings the address (one ICMP echo per
                 round of 50 ms until one comes back). The figure: when the last (host, name)
                 pair answered, from t0. `all ups returned` is when the last `up` exited.
  new endpoint   agents in every other host's P-sK-1 wait for `lateR` (10 ms rounds); t0 just
                 before `up lateR` starts on the last host; the figure: when the last host's
                 agent got its echo reply, the new container's `up` included (median of R).
The peer, measured in the same run on the same simulated hosts: what flannel's vxlan backend does
when a lease appears, done by a shell: on every other host `etcdctl watch --prefix` feeds a loop
that programs, per event, one neighbour entry (`ip neigh replace GW lladdr MAC nud permanent`),
one FDB entry (`bridge fdb replace MAC dst VTEP`) and one route (`ip route replace SUBNET via GW
onlink`) on a VXLAN device of its own, then prints the time. Its figure: from just before the
`etcdctl put` of a lease until the last host programmed it (median of R). Entries are checked with
`bridge fdb show` afterwards; the loop's own timestamp is used rather than polling `bridge fdb
show` in N-1 hosts, which would cost more than what it measures.

Leaves nothing behind (asserted: links, netns, nft tables, /run/netns, its processes), also when
interrupted. Holds the kernel-test lock.
Usage: bench/overlay.py [--hosts 2,5,10] [--containers C] [--repeats R] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness import PY, ROOT, kernel_lock

sys.path.insert(0, str(ROOT / "tests" / "kernel"))
from simhosts import ETCD, SimCluster, SimHost  # noqa: E402

AGENT = str(ROOT / "bench" / "overlay_agent.py")
STARTED: list[subprocess.Popen] = []  # every process this bench started in a simulated host
TARGET_S = 1.0
SETTLE_TIMEOUT = 180.0


@dataclass(frozen=True)
class Row:
    hosts: int
    containers: int
    ups_returned: float
    converged: float
    late_up: float
    late_reached: float
    late_samples: tuple[float, ...]
    peer: Optional[float]
    peer_samples: tuple[float, ...]


def started(proc: subprocess.Popen) -> subprocess.Popen:
    STARTED.append(proc)
    return proc


def end_started() -> None:
    """Kill what this bench started and is still running. SimCluster ends every process of a
    host's mount namespace, but `ip netns exec` gives its command a mount namespace of its own:
    an agent would outlive its host (and keep the container's network namespace)."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def up_process(host: SimHost, env: dict, project: str, file: Path, service: str, log: Path) -> subprocess.Popen:
    with open(log, "w") as err:  # the child holds its own copy
        return started(host.popen(PY, "-m", "compose_net", "-p", project, "-f", str(file), "up", "--quiet",
                                  service, env=env, stdout=subprocess.DEVNULL, stderr=err))


def compose(services: dict[str, int]) -> str:
    lines = ["services:"]
    for name, replicas in services.items():
        lines.append(f"  {name}: {{image: x, networks: [app], deploy: {{replicas: {replicas}}}}}")
    lines.append("networks:\n  app: {driver: overlay}")
    return "\n".join(lines) + "\n"


class Agent:
    """One overlay_agent.py inside a container of a simulated host; its reports by name."""

    def __init__(self, host: SimHost, container: str, names: list[str], interval: float):
        self.proc = started(host.popen("ip", "netns", "exec", container, PY, AGENT, "--interval", str(interval),
                               "--timeout", str(SETTLE_TIMEOUT), *names,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        self.where = f"{container} on {host.address}"
        self.reached: dict[str, float] = {}
        self.failed: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            word, *rest = line.split()
            if word == "ready":
                self.ready.set()
            elif word == "ok":
                self.reached[rest[0]] = float(rest[2])
            else:
                self.failed.append(line.strip())
        self.ready.set()

    def result(self) -> dict[str, float]:
        self.thread.join(SETTLE_TIMEOUT + 30)
        self.proc.wait(10)
        if self.failed or self.proc.returncode != 0:
            raise SystemExit(f"probe in {self.where}: {self.failed} (exit {self.proc.returncode})")
        return self.reached


def converge(cluster: SimCluster, project: str, file: Path, logs: Path) -> tuple[float, float]:
    """Seconds until every `up` returned, and until every host reached every other host."""
    env = cluster.env()
    n = len(cluster.hosts)
    returned: dict[int, float] = {}
    agents: dict[int, Agent] = {}
    failures: list[str] = []

    def wait(k: int, host: SimHost, proc: subprocess.Popen) -> None:
        rc = proc.wait()
        returned[k] = time.monotonic()
        if rc != 0:
            failures.append(f"up s{k} on {host.address} exited {rc}: {(logs / f'up{k}.err').read_text()[-2000:]}")
            return
        names = [x for j in range(1, n + 1) if j != k for x in (f"s{j}", f"{project}-s{j}-1")]
        agents[k] = Agent(host, f"{project}-s{k}-1", names, 0.05)

    procs = []
    t0 = time.monotonic()
    for k, host in enumerate(cluster.hosts, 1):
        procs.append(up_process(host, env, project, file, f"s{k}", logs / f"up{k}.err"))
    waiters = [threading.Thread(target=wait, args=(k, h, p), daemon=True)
               for k, (h, p) in enumerate(zip(cluster.hosts, procs), 1)]
    for w in waiters:
        w.start()
    for w in waiters:
        w.join()
    if failures:
        raise SystemExit("\n".join(failures))
    reached = [t for a in agents.values() for t in a.result().values()]
    assert len(reached) == n * (n - 1) * 2, reached
    return max(returned.values()) - t0, max(reached) - t0


def new_endpoint(cluster: SimCluster, project: str, file: Path, name: str, logs: Path) -> tuple[float, float]:
    """Seconds the `up NAME` on the last host took, and until every other host reached NAME."""
    env = cluster.env()
    *others, last = cluster.hosts
    agents = [Agent(h, f"{project}-s{k}-1", [name], 0.01) for k, h in enumerate(others, 1)]
    for a in agents:
        if not a.ready.wait(30):
            raise SystemExit(f"probe in {a.where} did not start")
    t0 = time.monotonic()
    proc = up_process(last, env, project, file, name, logs / f"{name}.err")
    rc = proc.wait()
    up = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"up {name} exited {rc}: {(logs / f'{name}.err').read_text()[-2000:]}")
    reached = [a.result()[name] for a in agents]
    return up, max(reached) - t0


WATCH = r"""
etcdctl --endpoints "$1" watch --prefix --rev "$3" "$2" | while read -r event && read -r key && read -r value; do
    [ "$event" = PUT ] || continue
    set -- $value  # MAC VTEP SUBNET GATEWAY
    ip neigh replace "$4" lladdr "$1" dev flb0 nud permanent
    bridge fdb replace "$1" dev flb0 dst "$2" self permanent
    ip route replace "$3" via "$4" dev flb0 onlink
    echo "ok $key $EPOCHREALTIME"
done
"""


class Watcher:
    """The flannel-like loop on one host; `next()` is the (key, wall-clock time) of its next event."""

    def __init__(self, host: SimHost, url: str, prefix: str, revision: int):
        self.proc = started(host.popen("bash", "-c", WATCH, "watch", url, prefix, str(revision),
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            _, key, at = line.split()
            self.events.put((key, float(at)))

    def next(self) -> tuple[str, float]:
        try:
            return self.events.get(timeout=30)
        except queue.Empty:
            raise SystemExit("the flannel-like loop did not program a lease within 30 s") from None


def peer(cluster: SimCluster, tag: str, repeats: int) -> list[float]:
    """The flannel-like loop: seconds from an etcd put of a lease until every other host programmed it."""
    *others, last = cluster.hosts
    for h in cluster.hosts:
        h.run("ip", "link", "add", "flb0", "type", "vxlan", "id", "1", "local", h.address, "dev", "ul0",
              "dstport", "8472", "nolearning")
        h.run("ip", "link", "set", "flb0", "up")
    prefix = f"/flannel-bench/{tag}/subnets/"
    # every watch starts at the store's next revision: a put made before a watch is registered
    # still reaches it
    header = json.loads(last.run("etcdctl", "--endpoints", cluster.url, "get", prefix, "-w", "json").stdout)
    watchers = [Watcher(h, cluster.url, prefix, int(header["header"]["revision"]) + 1) for h in others]
    samples = []
    for r in range(repeats + 1):  # r = 0: the watches are up once every host saw it (not measured)
        mac, key = f"02:fb:00:00:{r // 256:02x}:{r % 256:02x}", f"{prefix}10.244.{r}.0-24"
        t0 = time.time()
        last.run("etcdctl", "--endpoints", cluster.url, "put", key, f"{mac} {last.address} 10.244.{r}.0/24 10.244.{r}.0")
        done = []
        for w in watchers:
            got, at = w.next()
            assert got == key, (got, key)
            done.append(at)
        for h in others:
            assert f"{mac} dst {last.address}" in h.run("bridge", "fdb", "show", "dev", "flb0").stdout
        if r:
            samples.append(max(done) - t0)
    return samples


def run_size(n: int, per_host: int, repeats: int, with_peer: bool) -> Row:
    project = "ov" + uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp, SimCluster(n) as cluster:
        logs = Path(tmp)
        lates = {f"late{r}": 1 for r in range(1, repeats + 1)}
        shared = logs / "compose.yml"
        shared.write_text(compose({f"s{k}": per_host for k in range(1, n + 1)} | lates))
        try:
            ups, converged = converge(cluster, project, shared, logs)
            late = [new_endpoint(cluster, project, shared, name, logs) for name in lates]
            peer_samples = peer(cluster, cluster.tag, repeats) if with_peer else []
        finally:
            end_started()
    return Row(n, n * per_host, ups, converged, statistics.median(u for u, _ in late),
               statistics.median(t for _, t in late), tuple(t for _, t in late),
               statistics.median(peer_samples) if peer_samples else None, tuple(peer_samples))


def exited(proc: subprocess.Popen) -> bool:
    try:
        proc.wait(5)  # SimCluster has killed what was still running: only reap it
        return True
    except subprocess.TimeoutExpired:
        return False


def snapshot() -> dict[str, object]:
    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True).stdout

    links = sorted(line.split(":", 2)[1].strip().split("@")[0] for line in out("ip", "-o", "link").splitlines())
    return {"links": links, "netns": sorted(out("ip", "netns", "list").split()),
            "nft": sorted(t for t in out("nft", "list", "tables").splitlines() if t.strip()),
            "/run/netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []}


def print_table(rows: list[Row], per_host: int, repeats: int) -> None:
    print(f"\nOverlay network across simulated hosts, {per_host} containers per host (seconds; new endpoint: "
          f"median of {repeats}, its own `up` included)\n")
    print("| hosts | containers | all ups returned | converged | new endpoint: its up | new endpoint reachable "
          "everywhere | flannel-like peer | ratio | target | met? |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer_s = f"{r.peer:.3f}" if r.peer is not None else "not run"
        ratio = f"{r.late_reached / r.peer:.1f}x" if r.peer else "-"
        target = "< 1 s (new endpoint)" if r.hosts == 10 else "-"
        met = ("yes" if r.late_reached < TARGET_S else "no") if r.hosts == 10 else "-"
        print(f"| {r.hosts} | {r.containers} | {r.ups_returned:.2f} | {r.converged:.2f} | {r.late_up:.2f} | "
              f"{r.late_reached:.2f} | {peer_s} | {ratio} | {target} | {met} |")
    print("\nnew endpoint samples (s): " + "; ".join(
        f"{r.hosts} hosts: " + ", ".join(f"{s:.2f}" for s in r.late_samples) for r in rows))
    if any(r.peer_samples for r in rows):
        print("peer samples (s): " + "; ".join(
            f"{r.hosts} hosts: " + ", ".join(f"{s:.3f}" for s in r.peer_samples) for r in rows))
    print("ratio = compose-net's new endpoint (a whole `up`, then every other host's watch) / the flannel-like "
          "loop (an `etcdctl put`, then every other host's watch programming its entries). Flannel leases a "
          "subnet per host: a new container on a host already in is no event at all there")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", default="2,5,10", help="comma-separated host counts")
    parser.add_argument("--containers", type=int, default=10, help="containers per host")
    parser.add_argument("--repeats", type=int, default=3, help="new endpoints (and peer leases) per size")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0 or ETCD is None:
        raise SystemExit("bench/overlay.py needs root and etcd (apt-get install etcd-server etcd-client)")
    sizes = [int(s) for s in args.hosts.split(",")]
    if not all(2 <= n <= 250 for n in sizes) or args.containers < 1 or args.repeats < 1:
        raise SystemExit("--hosts: 2 to 250 each (one underlay /24); --containers and --repeats: at least 1")
    # unwind on either signal (even when started in the background, where SIGINT is ignored):
    # SimCluster and end_started remove everything
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    lock = kernel_lock()  # noqa: F841 (held while the file is open)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "compose_net"), AGENT], check=True)
    before = snapshot()
    rows = []
    try:
        for n in sizes:
            print(f"{n} hosts ...", file=sys.stderr, flush=True)
            rows.append(run_size(n, args.containers, args.repeats, not args.no_peer))
    finally:
        after = snapshot()
        leaked = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        alive = [p.args for p in STARTED if not exited(p)]
        if alive:
            leaked["processes"] = alive
        if leaked:
            print(f"LEFT BEHIND: {leaked}", file=sys.stderr)
    print_table(rows, args.containers, args.repeats)
    assert not leaked, leaked


if __name__ == "__main__":
    main()
