"""What the benchmarks share: the kernel-test lock (held for the whole run, or already held for
us by `flock LOCK bench/X.py`), the two-network project they bring up, and timing one
compose-net process the way a user's runs go (bytecode written once, not compiled each time)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent
LOCK_PATH = "/tmp/compose-net-kernel-tests.lock"
PY = sys.executable


def kernel_lock() -> IO:
    """Hold the lock every kernel test and benchmark takes; keep the returned file open."""
    fh = open(LOCK_PATH, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fh
    except BlockingIOError:
        pass
    if _holders(os.fstat(fh.fileno()).st_ino) & _ancestors():
        return fh  # a parent (`flock LOCK bench/X.py`) holds it for us: waiting would never end
    print("waiting for the kernel-test lock ...", file=sys.stderr)
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def _holders(inode: int) -> set[int]:
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            holders.add(int(fields[4]))
    return holders


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def two_networks(n: int, first: str, second: str) -> str:
    """N services, each on n1 (subnet `first`), every second one also on n2 (`second`)."""
    lines = ["services:"]
    for i in range(n):
        nets = "[n1, n2]" if i % 2 else "[n1]"
        lines.append(f"  s{i}:\n    image: x\n    networks: {nets}")
    lines.append(f"networks:\n  n1: {{ipam: {{config: [{{subnet: {first}}}]}}}}\n"
                 f"  n2: {{ipam: {{config: [{{subnet: {second}}}]}}}}")
    return "\n".join(lines) + "\n"


def timed_cli(*args: str, check: bool = True, extra_env: Optional[Mapping[str, str]] = None) -> float:
    """Seconds one `python -m compose_net ARGS` process takes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | dict(extra_env or {})
    start = time.perf_counter()
    proc = subprocess.run([PY, "-m", "compose_net", *args], capture_output=True, text=True, env=env, cwd=str(ROOT))
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"compose-net {' '.join(args)} failed: {proc.stderr}")
    return elapsed
