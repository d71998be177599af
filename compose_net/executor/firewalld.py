"""The only module that runs `firewall-cmd`: firewalld's own interface for putting the
project's bridges in a zone that forwards (runtime configuration only: a firewalld restart
drops it, and the next `up` puts it back)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

from ..errors import RuntimeFailure

TIMEOUT = 30
TOOL = "firewall-cmd"


def _path() -> str | None:
    return shutil.which(TOOL) or shutil.which(TOOL, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _run(args: Sequence[str]) -> subprocess.CompletedProcess:
    path = _path()
    if path is None:
        raise RuntimeFailure(f"{TOOL} is not installed")
    try:
        return subprocess.run([path, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"{TOOL} {' '.join(args)} did not finish within {TIMEOUT} s") from exc


def running() -> bool:
    """Whether firewalld answers (`firewall-cmd --state` says running)."""
    if _path() is None:
        return False
    try:
        proc = _run(["--state"])
    except RuntimeFailure:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "running"


def argv(action: str, zone: str, interface: str) -> list[str]:
    """The command line, as a warning shows it when firewalld does not run."""
    return [TOOL, f"--zone={zone}", f"--{action}-interface={interface}"]


def has_interface(zone: str, interface: str) -> bool:
    return _run(argv("query", zone, interface)[1:]).returncode == 0


def add_interface(zone: str, interface: str) -> None:
    if has_interface(zone, interface):
        return
    proc = _run(argv("add", zone, interface)[1:])
    if proc.returncode != 0:
        raise RuntimeFailure(f"firewalld refused {interface} in zone {zone}: {(proc.stderr or proc.stdout).strip()}")


def remove_interface(zone: str, interface: str) -> None:
    if not has_interface(zone, interface):
        return
    proc = _run(argv("remove", zone, interface)[1:])
    if proc.returncode != 0:
        raise RuntimeFailure(f"firewalld kept {interface} in zone {zone}: {(proc.stderr or proc.stdout).strip()}")
