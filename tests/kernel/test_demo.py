"""`make demo`, the first command a newcomer types, run as CI runs it: the README's example
planned, brought up, listed, entered with `exec` and taken down, under a unique project name.

It fails if the script breaks (it reads `ps --format json`, whose keys are Docker's) and if the
progress lines lose their timings (they once printed 0.00s for every network and container)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import kernel_snapshot

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^ ✔ (Network|Container) (\S+)\s+(Created|Removed)(?:\s+(\d+(?:\.\d+)?)(ms|s))?$")


def _progress(text: str, status: str) -> dict[str, float | None]:
    """name -> seconds (None when the line has no time) of the progress lines with `status`."""
    out: dict[str, float | None] = {}
    for line in text.splitlines():
        m = LINE.match(line.rstrip())
        if m and m.group(3) == status:
            value = m.group(4)
            out[m.group(2)] = None if value is None else float(value) / (1000 if m.group(5) == "ms" else 1)
    return out


def test_make_demo_runs_the_example_and_leaves_nothing(project_name):
    before = kernel_snapshot()
    env = {**os.environ, "DEMO_PROJECT": project_name}
    try:
        run = subprocess.run(["bash", "scripts/demo.sh", "examples/three-tier"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([str(ROOT / ".venv/bin/compose-net"), "-p", project_name, "down", "--quiet"],
                       capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    out = run.stdout
    # exec entered the first container (`db`): its address and the embedded DNS server
    assert f"== compose-net exec db -- ip -br addr" in out, out
    assert re.search(r"^eth0@\S+\s+UP\s+172\.\d+\.\d+\.\d+/\d+", out, re.M), out
    assert "nameserver 127.0.0.11" in out
    # one timed line per network and container made, each its real time: never all equal,
    # never zero
    created = _progress(out, "Created")
    assert set(created) == {f"{project_name}_frontend", f"{project_name}_backend",
                            f"{project_name}-db-1", f"{project_name}-api-1", f"{project_name}-web-1"}, out
    assert all(s is not None and s > 0 for s in created.values()), out
    assert len(set(created.values())) > 1, f"one constant for every unit: {out}"
    removed = _progress(out, "Removed")
    containers = {k: v for k, v in removed.items() if "-" in k}
    assert len(containers) == 3 and all(s is not None and s > 0 for s in containers.values()), out
    # networks go in the project's one link group deletion: no time of their own, none shown
    assert [removed[f"{project_name}_{n}"] for n in ("frontend", "backend")] == [None, None], out
    assert kernel_snapshot() == before
