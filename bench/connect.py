#!/usr/bin/env python3
"""`network connect` + `network disconnect` of one container on a project of N containers.

A project of N containers (N = 100 by default; each on network 1, every second one also on
network 2) is brought up once. Then, R times each (median, whole process: start, read the state,
plan the project with the edit, observe what it touches, apply the difference):
  connect      `compose-net network connect PROJECT_n2 PROJECT-s0-1` (s0 is on n1 only)
  disconnect   `compose-net network disconnect PROJECT_n2 PROJECT-s0-1`
The peer: Docker 20.10's `docker network connect` / `disconnect` on this machine, 74 ms and
89 ms (figures quoted from issue 11; Docker is not installed here to measure them again in the
same run; podman is not either). Prints the table and the ratios. Holds the kernel-test lock.
Usage: bench/connect.py [--containers N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import PY, ROOT, kernel_lock, timed_cli, two_networks  # noqa: E402
DOCKER_MS = {"connect": 74.0, "disconnect": 89.0}  # Docker 20.10, this machine (issue 11)
TARGET_MS = 100.0


def compose(n: int) -> str:
    return two_networks(n, "10.212.0.0/16", "10.213.0.0/16")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    lock = kernel_lock()  # noqa: F841 (held while the file is open)
    project = "bench" + uuid.uuid4().hex[:6]
    net, ctr = f"{project}_n2", f"{project}-s0-1"
    times: dict[str, list[float]] = {"connect": [], "disconnect": []}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "compose.yml"
        file.write_text(compose(args.containers))
        subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "compose_net")], check=True)
        try:
            timed_cli("-p", project, "-f", str(file), "up")
            for _ in range(args.repeats):
                times["connect"].append(timed_cli("network", "connect", net, ctr))
                times["disconnect"].append(timed_cli("network", "disconnect", net, ctr))
            phases = breakdown(net, ctr)
        finally:
            subprocess.run([PY, "-m", "compose_net", "-p", project, "down"], capture_output=True, cwd=str(ROOT))
    print(f"\n`network connect` / `disconnect` of one container, project of {args.containers} containers "
          f"(ms, median of {args.repeats}, whole process)\n")
    print(f"| {'operation':<11} | {'compose-net':>11} | {'min':>7} | {'Docker 20.10':>12} | {'ratio':>6} | {'< 100 ms':>8} |")
    print(f"|{'-' * 13}|{'-' * 13}|{'-' * 9}|{'-' * 14}|{'-' * 8}|{'-' * 10}|")
    for op, samples in times.items():
        ms = statistics.median(samples) * 1000
        print(f"| {op:<11} | {ms:11.1f} | {min(samples) * 1000:7.1f} | {DOCKER_MS[op]:12.1f} | "
              f"{ms / DOCKER_MS[op]:6.2f} | {'yes' if ms < TARGET_MS else 'no':>8} |")
    print("\nratio = compose-net / Docker (below 1: faster). Docker's figures are quoted, not measured here.")
    print("\nWhere one connect's time goes (in-process, cProfile cumulative ms, imports included where first paid):\n")
    for name, ms in phases:
        print(f"  {name:<48} {ms:8.1f}")


def breakdown(net: str, ctr: str) -> list[tuple[str, float]]:
    """One connect in this process under cProfile: the phases' cumulative times."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    from compose_net import liveops, state

    with state.host_lock():
        liveops.connect(net, ctr)
    prof.disable()
    total = (time.perf_counter() - start) * 1000
    with state.host_lock():
        liveops.disconnect(net, ctr)
    stats = pstats.Stats(prof).stats
    wanted = {("probe.py", "probe_host"): "probe the host (other projects' states, links)",
              ("liveops.py", "model"): "load the compose file (loader, jsonschema)",
              ("planner.py", "plan_up"): "plan the project with the edit (graph, layout)",
              ("observe.py", "read"): "observe what the edit touches",
              ("executor/__init__.py", "up"): "apply the difference (executor)"}
    rows = []
    for (path, _, func), entry in stats.items():
        for (suffix, name), label in wanted.items():
            if path.endswith(suffix) and func == name:
                rows.append((label, entry[3] * 1000))
    return rows + [("total in-process (after the interpreter started)", total)]


if __name__ == "__main__":
    main()
