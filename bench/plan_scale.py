"""Benchmark: how planning scales with the size of the project (no kernel, no root).

    .venv/bin/python bench/plan_scale.py [--sizes 10,100,1000,5000] [--repeat 3]

Generates Compose files of N services over up to 50 networks (service i sits on network i mod M,
every second service on one more, every fifth publishes a port, every third has an alias and a
dependency), then times loading (parse, interpolate, validate, normalize, checks, model) and
planning (`plan_up` on an empty host) separately; the best of `--repeat` runs (the least
disturbed by other work on a shared machine; the median is printed too). The first 20
networks get their subnets from IPAM, the rest declare one (the default pools hold only 30).

Targets (issue 2): 1,000 services over 50 networks loaded and planned in under 1 s in all, and
5,000 in under 6x the 1,000 figure (no quadratic step).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compose_net.loader import LoadOptions, load  # noqa: E402
from compose_net.plan.planner import plan_up  # noqa: E402
from compose_net.plan.render import render_json  # noqa: E402
from compose_net.probe import HostFacts  # noqa: E402

AUTO_NETWORKS = 20


def networks_for(n: int) -> int:
    return min(50, max(2, n // 10))


def compose_text(n: int) -> str:
    m = networks_for(n)
    out = ["name: scale", "services:"]
    for i in range(n):
        nets = [i % m] + ([(i * 7 + 1) % m] if i % 2 else [])
        out.append(f"  s{i}:")
        out.append("    image: alpine")
        if i % 5 == 0:
            out.append("    ports:")
            out.append(f'      - "{20000 + i}:80"')
        if i % 3 == 0 and i > 0:
            out.append("    depends_on:")
            out.append(f"      - s{i - 1}")
        out.append("    networks:")
        for k in dict.fromkeys(nets):
            if i % 3 == 0:
                out.append(f"      n{k}:")
                out.append("        aliases:")
                out.append(f"          - a{i}-{k}")
            else:
                out.append(f"      n{k}: {{}}")
    out.append("networks:")
    for k in range(m):
        out.append(f"  n{k}:")
        if k >= AUTO_NETWORKS:
            out.append("    ipam:")
            out.append("      config:")
            out.append(f"        - subnet: 10.{k}.0.0/16")
    return "\n".join(out) + "\n"


def run(n: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cn-scale-") as tmp:
        path = Path(tmp) / "compose.yml"
        path.write_text(compose_text(n))
        loads, plans, renders = [], [], []
        ops = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            project = load(LoadOptions(files=(str(path),), environ={})).project
            t1 = time.perf_counter()
            plan = plan_up(project, HostFacts())
            t2 = time.perf_counter()
            render_json(plan)
            t3 = time.perf_counter()
            loads.append(t1 - t0)
            plans.append(t2 - t1)
            renders.append(t3 - t2)
            ops = len(plan.ops)
        return {"n": n, "networks": networks_for(n), "containers": len(project.containers), "ops": ops,
                "load": min(loads), "plan": min(plans), "render": min(renders),
                "median": statistics.median(a + b for a, b in zip(loads, plans))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000,5000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [run(n, args.repeat) for n in sizes]
    print(f"{'services':>8} {'networks':>8} {'ops':>7} {'load ms':>9} {'plan ms':>9} {'total ms':>9} "
          f"{'µs/service':>10} {'json ms':>8} {'median total':>12}")
    for r in rows:
        total = r["load"] + r["plan"]
        print(f"{r['n']:>8} {r['networks']:>8} {r['ops']:>7} {r['load'] * 1e3:>9.1f} {r['plan'] * 1e3:>9.1f} "
              f"{total * 1e3:>9.1f} {total / r['n'] * 1e6:>10.0f} {r['render'] * 1e3:>8.1f} "
              f"{r['median'] * 1e3:>12.1f}")
    by_n = {r["n"]: r["load"] + r["plan"] for r in rows}
    if 1000 in by_n:
        verdict = "ok" if by_n[1000] < 1.0 else "MISSED"
        print(f"1,000 services: {by_n[1000]:.3f} s (target < 1 s): {verdict}")
    if 1000 in by_n and 5000 in by_n:
        ratio = by_n[5000] / by_n[1000]
        print(f"5,000 / 1,000: {ratio:.2f}x (target < 6x): {'ok' if ratio < 6 else 'MISSED'}")
        stage = {r["n"]: r for r in rows}
        for part in ("load", "plan"):
            print(f"  {part} alone: {stage[5000][part] / stage[1000][part]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
