#!/usr/bin/env python3
"""What an `up` of a project that is already up costs: observing the kernel and planning nothing.

A project of N containers (N = 100 by default; each on network 1, every second one also on
network 2) is brought up once. Then, each measured R times (median):
  up (unchanged)         `python -m compose_net up` as a process: start, observe, nothing applied (the
                         desired plan the last up kept is reused: nothing it is made from changed)
  up (plan made anew)    the same with a new environment variable each time: load, validate, graph, plan
  check                  `python -m compose_net check`: the same, printing that nothing differs
  observe (in-process)   `observe.read(observe.query(journal))` alone
  up after damage        the same `up` after one container's namespace was deleted (the repair applied)
and, as the peer that reads the same facts with the standard tool:
  ip (per namespace)     `ip -n NS -j addr show` + `ip -n NS -j route show` for every container,
                         plus `ip -j link show` once: what an `ip` script pays to look
Prints a table with the ratio of each to compose-net's observation. Holds the kernel-test lock.
Usage: bench/reconcile.py [--containers N] [--repeats R]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import kernel_lock, timed_cli, two_networks  # noqa: E402

PY = sys.executable


def compose(n: int) -> str:
    return two_networks(n, "10.210.0.0/16", "10.211.0.0/16")


def cli(project: str, file: Path, *args: str, check: bool = True, extra_env: dict | None = None) -> float:
    return timed_cli("-p", project, "-f", str(file), *args, check=check, extra_env=extra_env)


def median_ms(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lock = kernel_lock()  # noqa: F841 (held while the file is open)
    project = "bench" + uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "compose.yml"
        file.write_text(compose(args.containers))
        subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "compose_net")], check=True)
        try:
            cli(project, file, "up")
            rows = measure(project, file, args)
        finally:
            cli(project, file, "down", check=False)
    print_table(rows, args.containers)


def measure(project: str, file: Path, args) -> list[tuple[str, float]]:
    from compose_net import observe, state

    n, repeats = args.containers, args.repeats
    cli(project, file, "up")  # the first up after a change keeps the plan for the next ones
    unchanged = median_ms(lambda: cli(project, file, "up"), repeats)
    # a variable of the environment changed each time: the plan is made anew (load, validate, graph, plan)
    nonce = iter(range(10 ** 6))
    replanned = median_ms(lambda: cli(project, file, "up", extra_env={"BENCH_NONCE": str(next(nonce))}), repeats)
    check = median_ms(lambda: cli(project, file, "check"), repeats)
    recorded = state.Journal(project).read().ops
    query = observe.query(recorded)
    observe.read(query)  # imports and caches warm, as in a process that has loaded its plan

    def observe_once() -> float:
        start = time.perf_counter()
        observe.read(query)
        return time.perf_counter() - start

    observed = median_ms(observe_once, repeats)
    victims = iter(range(n))

    def damaged() -> float:
        subprocess.run(["ip", "netns", "del", f"{project}-s{next(victims)}-1"], check=True)
        return cli(project, file, "up")

    repair = median_ms(damaged, repeats)
    namespaces = [f"{project}-s{i}-1" for i in range(n)]

    def ip_look() -> float:
        start = time.perf_counter()
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True)
        for ns in namespaces:
            subprocess.run(["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, check=True)
            subprocess.run(["ip", "-n", ns, "-j", "route", "show"], capture_output=True, check=True)
        return time.perf_counter() - start

    looked = median_ms(ip_look, max(1, repeats // 2))
    return [("compose-net up, project unchanged (process)", unchanged),
            ("compose-net up, unchanged, plan made anew (process)", replanned),
            ("compose-net check, project intact (process)", check),
            ("compose-net observe alone (in-process)", observed),
            ("compose-net up after one namespace was deleted (process)", repair),
            ("ip: link once, addr + route in each namespace", looked)]


def print_table(rows: list[tuple[str, float]], n: int) -> None:
    observed = rows[3][1]
    print(f"\nAn `up` of a project of {n} containers that is already up (ms, median)\n")
    print(f"| {'what':<58} | {'ms':>8} | {'x observe':>9} |")
    print(f"|{'-' * 60}|{'-' * 10}|{'-' * 11}|")
    for name, ms in rows:
        print(f"| {name:<58} | {ms:8.1f} | {ms / observed:9.2f} |")
    print(f"\ntarget: the unchanged up under 500 ms whole process; observing {n} namespaces with "
          f"compose-net is {rows[5][1] / observed:.1f}x faster than with ip")


if __name__ == "__main__":
    main()
