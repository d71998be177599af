"""Apply a plan to the kernel (`up`), undo it from the journal alone (`down`).

Nothing is decided here that the plan did not say: `apply.HANDLERS` maps each op kind to the
code that performs it, and `up` runs exactly the plan's ops, in order. What this module adds is
the bookkeeping around a run:

- the journal: before the first op reaches the kernel it holds everything that may exist once
  the run is over (what was recorded before, and what the plan makes); after a successful run,
  exactly what the plan says the project is (`Plan.record`);
- failure: what this run made is undone (not what it replaced in place: a file, the table), the
  journal keeps what it held before, and OpFailed names the op and the kernel's error;
- `down`: DNS stopped first, then the inverses of the journal, best effort, every error reported.

Units named "shared:..." (the legacy bridge `cn0`) are removed only by the last project whose
journal still has them. The caller holds `state.host_lock()` around observe + plan + apply;
these functions do not take it themselves.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

from compose_net.errors import DownErrors, OpFailed, RuntimeFailure
from compose_net.executor import preflight
from compose_net.executor.apply import Applier, unit_event
from compose_net.plan.ops import DnsStop, LinkDelete, LinkGroupDelete, Op, Plan, teardown
from compose_net.state import Journal, list_projects

Progress = Optional[Callable[[tuple], None]]

FAIL_AFTER_ENV = "COMPOSE_NET_FAIL_AFTER"
SHARED_PREFIX = "shared:"


@dataclass(frozen=True)
class UpResult:
    project: str
    changed: bool
    created: tuple[str, ...] = ()  # units
    recreated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    ops_applied: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    updated: bool = False  # an edit applied to a project that was up

    @property
    def message(self) -> str:
        """How the CLI ends its report: "project NAME <message>"."""
        if not self.changed:
            return "is already up: nothing to change"
        if not self.updated:
            return "is up"
        # networks and containers, as the progress lines name them: the summary, firewall and
        # host units are rewritten in place on every edit and count as nothing here
        counts = [(len([u for u in units if unit_event(u)]), what) for units, what in (
            (self.created, "created"), (self.recreated, "recreated"), (self.removed, "removed"))]
        parts = [f"{n} {what}" for n, what in counts if n]
        return "is up, updated: " + ", ".join(parts) if parts else "is up, updated"


def _fail_after() -> Optional[int]:
    value = os.environ.get(FAIL_AFTER_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise RuntimeFailure(f"{FAIL_AFTER_ENV}={value!r} is not an op number") from None


def _units(ops: tuple[Op, ...] | list[Op]) -> dict[str, list[Op]]:
    out: dict[str, list[Op]] = {}
    for op in ops:
        out.setdefault(op.unit, []).append(op)
    return out


def _shared_in_use(project: str, unit: str) -> bool:
    """Whether another project's journal still holds shared unit `unit`."""
    for other in list_projects():
        if other == project:
            continue
        try:
            if any(op.unit == unit for op in Journal(other).read().ops):
                return True
        except RuntimeFailure:
            return True  # unreadable: assume in use rather than pull the bridge from under it
    return False


def _teardown_for_down(
    project: str, ops: tuple[Op, ...], group_delete: bool = True, context: tuple[Op, ...] = ()
) -> tuple[Op, ...]:
    """The inverses of `ops` for `down` (or a rollback, with the whole plan as `context`)."""
    shared_kept = {
        op.unit for op in ops if op.unit.startswith(SHARED_PREFIX) and _shared_in_use(project, op.unit)
    }
    mine = tuple(op for op in ops if op.unit not in shared_kept)
    # Shared links never join a project's group deletion.
    shared = tuple(op for op in mine if op.unit.startswith(SHARED_PREFIX))
    own = tuple(op for op in mine if not op.unit.startswith(SHARED_PREFIX))
    # A group a shared link carries is not the project's alone (other projects' links on the
    # shared bridge may carry it too): links of such a group are deleted one by one.
    shared_groups = {
        g for op in ops + context if op.unit.startswith(SHARED_PREFIX) for g in [getattr(op, "group", None)] if g
    }
    own_undo: list[Op] = []
    for op in teardown(own, group_delete=group_delete):
        if isinstance(op, LinkGroupDelete) and op.group in shared_groups:
            own_undo.extend(LinkDelete(op.unit, None, name) for name in op.names)
        else:
            own_undo.append(op)
    undo = own_undo + list(teardown(shared, group_delete=False))
    # The DNS server holds a socket in every container namespace: stop it before they go.
    dns = [op for op in undo if isinstance(op, DnsStop)]
    return tuple(dns + [op for op in undo if not isinstance(op, DnsStop)])


def plan_down(project: str) -> tuple[Op, ...]:
    """The ops `down` would run now (for `down --dry-run`), from the journal alone."""
    return _teardown_for_down(project, Journal(project).read().ops)


def _undo(ops: tuple[Op, ...], progress: Progress = None) -> list[str]:
    ap = Applier(None, undo=True, progress=progress)
    try:
        ap.run(list(enumerate(ops, 1)))
    finally:
        ap.close()
    return ap.errors


def down(project: str, *, progress: Progress = None) -> None:
    """Remove everything the project's journal names; a no-op when it is not up. Goes on after
    errors and raises DownErrors with all of them (the journal is kept, so `down` can retry)."""
    journal = Journal(project)
    if not journal.exists():
        return
    ops = journal.read().ops
    undo = _teardown_for_down(project, ops)
    journal.mark_down()
    journal.close()
    reported: set[tuple[str, str]] = set()

    def note(event: tuple) -> None:
        reported.add((event[0], event[1]))
        progress(event)  # type: ignore[misc]

    errors = _undo(undo, note if progress else None)
    if errors:
        raise DownErrors(errors)
    if progress:
        # A network's links go in the project's one group deletion, which removes every
        # network at once: no time is a network's own, so its line (after the containers') has none.
        for unit in dict.fromkeys(op.unit for op in ops):
            event = unit_event(unit)
            if event and event[0] == "network" and event not in reported:
                progress((event[0], event[1], "removed"))
    journal.discard()


def up(plan: Plan, *, progress: Progress = None) -> UpResult:
    """Apply exactly `plan.ops`; afterwards the journal holds `plan.record`."""
    started = time.perf_counter()
    fail_after = _fail_after()
    journal = Journal(plan.project)
    try:
        prior = journal.read()
        record = tuple(plan.record if plan.record is not None else plan.ops)
        if not plan.ops:
            if prior.ops != record or not prior.complete:
                journal.rewrite(record, complete=True)
            return UpResult(plan.project, changed=False, seconds=time.perf_counter() - started)
        statuses = _unit_statuses(plan, prior.ops, record)
        numbered = list(enumerate(plan.ops, 1))
        ours = frozenset(key for op in prior.ops for key in op.creates())
        preflight.check(numbered, ours=ours)
        # Everything that may exist once this run ends, on record before the kernel sees any of it.
        merged = _merged(prior.ops, record)
        journal.rewrite(merged, complete=False)
        ap = Applier(None, progress=progress, actions=statuses)
        try:
            ap.run(numbered, fail_after, plan.ops)
        except BaseException as exc:
            ap.close()
            _roll_back(plan.project, journal, prior, ap.done, record, exc)
            raise
        finally:
            ap.close()
        if merged == list(record):  # nothing recorded before is dropped: the journal is right as it is
            journal.mark_complete()
        else:
            journal.rewrite(record, complete=True)
    finally:
        journal.close()
    by_status: dict[str, list[str]] = {}
    for unit, status in statuses.items():
        by_status.setdefault(status, []).append(unit)
    return UpResult(plan.project, True, created=tuple(by_status.get("created", ())),
                    recreated=tuple(by_status.get("recreated", []) + by_status.get("updated", [])),
                    removed=tuple(by_status.get("removed", ())), ops_applied=ap.count,
                    warnings=tuple(ap.warnings), updated=bool(prior.ops),
                    seconds=time.perf_counter() - started)


def _merged(first: tuple[Op, ...], then: tuple[Op, ...]) -> list[Op]:
    seen = set(first)
    return list(first) + [op for op in then if op not in seen]


def _unit_statuses(plan: Plan, prior: tuple[Op, ...], record: tuple[Op, ...]) -> dict[str, str]:
    """What happens to each unit the plan touches, for the progress lines and the summary."""
    before = {op.unit for op in prior}
    after = {op.unit for op in record}
    remade = {op.unit for op in plan.ops if op.kind == "netns_create"}
    out: dict[str, str] = {}
    for op in plan.ops:
        unit = op.unit
        if unit in out:
            continue
        if unit not in before:
            out[unit] = "created"
        elif unit not in after:
            out[unit] = "removed"
        else:
            out[unit] = "recreated" if unit in remade else "updated"
    return out


def _roll_back(project: str, journal: Journal, prior, done: list[Op], record: tuple[Op, ...],
               exc: BaseException) -> None:
    """Undo what a failed run made; what it replaced in place stays (its old form is gone, and
    the next `up` writes it again). The journal goes back to what it held, or goes."""
    replaced = {key for op in prior.ops for key in op.creates()}
    made = [op for op in done if not (op.in_place and set(op.creates()) & replaced)]
    # `record` tells which link groups are shared (the legacy bridge's): never deleted whole
    errors = _undo(_teardown_for_down(project, tuple(made), group_delete=not prior.ops, context=record))
    if errors:  # the journal stays as it is (a superset), for `down` or the next `up`
        raise _with_rollback_errors(exc, errors) from exc
    if prior.ops:
        journal.rewrite(prior.ops, complete=prior.complete)
    else:
        journal.discard()


def _with_rollback_errors(exc: BaseException, errors: list[str]) -> BaseException:
    if isinstance(exc, OpFailed):
        return OpFailed(exc.seq, exc.description, exc.reason + "; rollback left: " + "; ".join(errors))
    return DownErrors([str(exc)] + errors)


__all__ = ["UpResult", "up", "down", "plan_down"]
