"""The only module that runs `iptables`/`ip6tables`: rules compose-net adds to other owners'
chains (Docker's DOCKER-USER, ufw's ufw-user-forward, a hand-made FORWARD chain).

Those chains live in iptables-nft tables, which must be written with iptables itself: a rule
added there with `nft` (a wildcard interface, a native `ct` expression) makes every later
`iptables -L`/`-I` on that chain fail with "chain is incompatible", breaking Docker's and ufw's
own management. Every call is argv (no shell) with `-w` (wait for the xtables lock). A rule is
identified by its whole spec, comment included, so `-C`/`-D` find only the rule we added.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

from ..errors import RuntimeFailure

TIMEOUT = 30
TOOLS = {"ip": "iptables", "ip6": "ip6tables"}


def _tool(family: str) -> str:
    name = TOOLS.get(family)
    if name is None:
        raise RuntimeFailure(f"no iptables tool for family {family!r}")
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise RuntimeFailure(f"{name} is not installed; it is needed to add the project's rules to "
                             "another firewall's chain (apt-get install iptables)")
    return path


def _run(family: str, args: Sequence[str]) -> subprocess.CompletedProcess:
    argv = [_tool(family), "-w", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"{' '.join(argv)} did not finish within {TIMEOUT} s") from exc


def _message(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr or proc.stdout or f"exit status {proc.returncode}").strip()


def present(family: str, table: str, chain: str, rule: Sequence[str]) -> bool:
    """Whether exactly this rule is in the chain (`-C`); False also when the chain is gone."""
    return _run(family, ["-t", table, "-C", chain, *rule]).returncode == 0


def insert(family: str, table: str, chain: str, rule: Sequence[str]) -> None:
    """Put the rule at the head of the chain, unless it is there already."""
    if present(family, table, chain, rule):
        return
    proc = _run(family, ["-t", table, "-I", chain, "1", *rule])
    if proc.returncode != 0:
        raise RuntimeFailure(f"{TOOLS[family]} could not add a rule to {table} {chain}: {_message(proc)}")


def delete(family: str, table: str, chain: str, rule: Sequence[str]) -> None:
    """Remove every copy of exactly this rule; a rule (or chain) that is gone is done."""
    for _ in range(64):  # a copy a lost journal left, added again by a later up
        if not present(family, table, chain, rule):
            return
        proc = _run(family, ["-t", table, "-D", chain, *rule])
        if proc.returncode != 0:
            raise RuntimeFailure(f"{TOOLS[family]} could not delete a rule from {table} {chain}: {_message(proc)}")
