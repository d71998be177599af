"""What compose-net keeps between runs: `/run/compose-net/PROJECT/` (0700) and a host-wide lock.

- `journal`: JSON lines. Each `{"ops": [...]}` line lists ops (the plan's JSON form) written and
  fsynced *before* they are sent to the kernel, so after a crash or `kill -9` at any point the
  journal names everything that may exist. `{"complete": true}` closes a successful `up`; a journal
  that does not end with it belongs to an `up` that never finished, or to a `down` that began
  (`{"down": true}`) and did not finish. A torn last line (the crash
  hit the write itself) is ignored: its ops were never sent.
- `project.json`: the summary the plan writes (read by ps/ls/DNS/IPAM of other projects).
- `/run/compose-net.lock` (beside the root, as iptables keeps /run/xtables.lock): flock
  serializing up/down of all projects, so two concurrent `up`s never see the same free subnet.
  The lock file stays (removing a lock file others may be waiting on would let two holders in);
  beside the root rather than in it, so a host with nothing up has nothing under the root.

The root can be moved with COMPOSE_NET_STATE_DIR (unit tests use a temporary directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from compose_net.errors import StateError
from compose_net.plan.ops import Op, op_from_json

if TYPE_CHECKING:  # pragma: no cover
    from compose_net.summary import Summary

DEFAULT_ROOT = "/run/compose-net"
JOURNAL = "journal"
DESIRED = "desired.json"  # the last `up`'s desired plan and the digest of what it was made from
SUMMARY = "project.json"
LOCK_SUFFIX = ".lock"


def root() -> Path:
    return Path(os.environ.get("COMPOSE_NET_STATE_DIR", DEFAULT_ROOT))


def project_dir(project: str) -> Path:
    return root() / project


def summary_path(project: str) -> Path:
    return project_dir(project) / SUMMARY


def _ensure_root() -> Path:
    base = root()
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    return base


def lock_path() -> Path:
    base = root()
    return base.with_name(base.name + LOCK_SUFFIX)


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Hold the host-wide lock for the body (blocking until other up/down runs finish)."""
    try:
        _ensure_root()
        fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the state lock under {root()}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


lock = host_lock  # the name docs/design.md gives it


@dataclass(frozen=True)
class JournalState:
    ops: tuple[Op, ...]
    complete: bool


class Journal:
    """The append-only record of what a project's `up` runs asked the kernel for."""

    def __init__(self, project: str):
        self.project = project
        self.dir = project_dir(project)
        self.path = self.dir / JOURNAL
        self._fd: Optional[int] = None

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> JournalState:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return JournalState((), False)
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        ops: list[Op] = []
        complete = False
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number >= len(lines) - 1:
                    break  # torn last write: those ops were never sent
                raise StateError(f"{self.path}:{number}: corrupt journal line")
            if "ops" in record:
                try:
                    ops.extend(op_from_json(o) for o in record["ops"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise StateError(f"{self.path}:{number}: unreadable op: {exc}") from exc
                complete = False
            elif record.get("complete"):
                complete = True
            else:  # {"down": true}: a teardown began; what is left is no longer a whole project
                complete = False
        return JournalState(tuple(ops), complete)

    def _open(self) -> int:
        if self._fd is None:
            try:
                _ensure_root()
                self.dir.mkdir(mode=0o700, exist_ok=True)
                os.chmod(self.dir, 0o700)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc
        return self._fd

    def _append(self, record: dict[str, Any]) -> None:
        fd = self._open()
        line = json.dumps(record, separators=(",", ":")) + "\n"
        os.write(fd, line.encode())
        os.fsync(fd)

    def record(self, ops: Sequence[Op]) -> None:
        """Durably note `ops` as about to be sent (call before the kernel sees them)."""
        if ops:
            self._append({"ops": [op.to_json() for op in ops]})

    def mark_complete(self) -> None:
        self._append({"complete": True})

    def mark_down(self) -> None:
        """Note that a teardown begins: if it is interrupted, the next `up` must not mistake
        the half-removed project for one that is up."""
        self._append({"down": True})

    def rewrite(self, ops: Sequence[Op], complete: bool = True) -> None:
        """Replace the journal atomically by exactly `ops` (after a diff or a rollback)."""
        self.close()
        self._open()
        self.close()
        tmp = self.dir / (JOURNAL + ".tmp")
        lines = [json.dumps({"ops": [op.to_json() for op in ops]}, separators=(",", ":"))] if ops else []
        if complete:
            lines.append(json.dumps({"complete": True}))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode() if lines else b"")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Forget the project: its whole state directory goes."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_summary(project: str) -> Optional["Summary"]:
    """The project's recorded state, or None when it is not up."""
    from compose_net.summary import from_text

    path = summary_path(project)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    return from_text(text, str(path))


@dataclass(frozen=True)
class Desired:
    """A desired plan as `up` made it, with what it was made from (see `fingerprint`) and the
    loader's warnings, which a run that reuses the plan says again."""

    key: str
    files: tuple[tuple[str, str], ...]
    plan: Any  # plan.ops.Plan
    warnings: tuple[str, ...] = ()


def save_desired(desired: Desired) -> None:
    """Kept beside the journal, so `down` removes it with the rest; written whole or not at all."""
    from compose_net import jsonform

    plan = desired.plan
    path = project_dir(plan.project) / DESIRED
    data = {"files": desired.files, "warnings": desired.warnings,
            "project": plan.project, "notes": plan.notes, "plan_warnings": plan.warnings,
            "state": jsonform.dump(plan.state) if plan.state is not None else None,
            "ops": plan.to_json()}
    try:
        tmp = path.with_suffix(".tmp")
        # the key on a line of its own: a run looking for its plan reads one line per project
        tmp.write_text(desired.key + "\n" + json.dumps(data, separators=(",", ":")))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from exc


def find_desired(key: str, project: Optional[str] = None) -> Optional[Desired]:
    """The desired plan saved under `key`: in `project`'s directory, or when the name is not
    known before loading, in whichever project's it is. None when there is none (or it cannot
    be read: the caller plans anew)."""
    from compose_net.plan.ops import Plan
    from compose_net.summary import from_data

    for name in [project] if project else list_projects():
        try:
            with open(project_dir(name) / DESIRED) as fh:
                if fh.readline().rstrip("\n") != key:
                    continue
                data = json.loads(fh.read())
            state = from_data(data["state"], DESIRED) if data["state"] is not None else None
            plan = Plan(data["project"], tuple(op_from_json(o) for o in data["ops"]), tuple(data["notes"]),
                        tuple(data["plan_warnings"]), state)
            return Desired(key, tuple((p, d) for p, d in data["files"]), plan, tuple(data["warnings"]))
        except (OSError, ValueError, KeyError, TypeError, StateError):
            continue
    return None


def list_projects() -> list[str]:
    """Projects with state on this host (up, or left by an interrupted up), sorted."""
    base = root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and (p / JOURNAL).exists())
