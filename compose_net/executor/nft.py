"""The only module that runs `nft`: apply, check and delete one project's table.

Each call is one `nft` process and one kernel transaction: a ruleset either lands whole or not
at all. The document comes from `firewall.ruleset()` as JSON text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any, Union

from ..errors import RuntimeFailure

NFT = "nft"
TIMEOUT = 30

Document = Union[str, dict[str, Any]]


def _nft_path() -> str:
    path = shutil.which(NFT) or shutil.which(NFT, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise RuntimeFailure("nft (nftables) is not installed; it is needed for the project's firewall")
    return path


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([_nft_path(), *args], input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"nft {' '.join(args)} did not finish within {TIMEOUT} s") from exc


def _text(document: Document) -> str:
    return document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))


def _message(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr or proc.stdout or f"exit status {proc.returncode}").strip()


def apply_table(family: str, table: str, ruleset_text: Document) -> None:
    """Apply the document that (re)creates `family table` in one `nft -j -f -` transaction.

    Deleting a table costs the kernel an RCU grace period (about 20 ms here), so a document in
    firewall.ruleset()'s add/delete/add form is first tried with `create table` instead, which
    fails whole, changing nothing, when the table exists; only then is the full replacement
    sent. A fresh `up` thus costs one nft run without the grace period."""
    text = _text(ruleset_text)
    fresh = _fresh_variant(text)
    if fresh is not None and _run(["-j", "-f", "-"], fresh).returncode == 0:
        return
    proc = _run(["-j", "-f", "-"], text)
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft could not apply table {family} {table}: {_message(proc)}")


def _fresh_variant(text: str) -> str | None:
    """The document with its leading add/delete/add of the table replaced by one `create`."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError):
        return None
    start = 1 if items and "metainfo" in items[0] else 0
    head = items[start:start + 3]
    if len(head) < 3 or [next(iter(x)) for x in head] != ["add", "delete", "add"] \
            or not all("table" in x[k] for x, k in zip(head, ("add", "delete", "add"))):
        return None
    return json.dumps({"nftables": items[:start] + [{"create": head[0]["add"]}] + items[start + 3:]},
                      separators=(",", ":"))


def check(ruleset_text: Document) -> None:
    """Have nft parse and validate the document without applying it (`nft -c`)."""
    proc = _run(["-c", "-j", "-f", "-"], _text(ruleset_text))
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft rejected the ruleset: {_message(proc)}")


def table_exists(family: str, table: str) -> bool:
    proc = _run(["list", "table", family, table])
    return proc.returncode == 0


def delete_table(family: str, table: str) -> None:
    """Delete the table with all its chains and rules; a table that is already gone is done."""
    proc = _run(["delete", "table", family, table])
    if proc.returncode == 0:
        return
    if not table_exists(family, table):
        return
    raise RuntimeFailure(f"nft could not delete table {family} {table}: {_message(proc)}")


def list_table(family: str, table: str) -> dict[str, Any]:
    """The table as nft's JSON listing (for checks and `ps`-style inspection)."""
    proc = _run(["-j", "list", "table", family, table])
    if proc.returncode != 0:
        raise RuntimeFailure(f"nft could not list table {family} {table}: {_message(proc)}")
    return json.loads(proc.stdout)


def list_table_if_present(family: str, table: str) -> Any:
    """The table's items as `nft -j list table` gives them, or None when there is no such table."""
    proc = _run(["-j", "list", "table", family, table])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr or "does not exist" in proc.stderr:
            return None
        raise RuntimeFailure(f"nft could not list table {family} {table}: {_message(proc)}")
    return json.loads(proc.stdout).get("nftables", [])


def list_chains() -> Any:
    """Every chain of every table as `nft -j list chains` gives them (base chains with their
    hook, priority and policy), or None when nft cannot be run or read the ruleset."""
    try:
        proc = _run(["-j", "list", "chains"])
    except RuntimeFailure:
        return None
    if proc.returncode != 0:
        return None
    try:
        return [item["chain"] for item in json.loads(proc.stdout).get("nftables", []) if "chain" in item]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
