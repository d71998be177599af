"""Apply a plan to the kernel (`up`), undo it from the journal alone (`down`).

Nothing is decided here that the plan did not say: `apply.HANDLERS` maps each op kind to the
code that performs it. What this module adds is the order of whole runs:

- a fresh `up`: preflight, then the ops in plan order, journaled before they are sent; on any
  failure the ops this run journaled are inverted (`plan.ops.teardown`) and OpFailed names the op;
- `up` again: same ops, nothing to do; an edited plan: the difference unit by unit (removed units
  torn down, changed ones recreated, new ones created, the summary and firewall table replaced in
  place, DNS told to reload);
- an `up` that never finished (crash, `kill -9`): everything it journaled is removed first;
- `down`: DNS stopped first, then the inverses of the journal, best effort, every error reported.

Units named "shared:..." (the legacy bridge `cn0`) are created only if missing and removed only by
the last project whose journal still has them. The caller holds `state.host_lock()` around
probe + plan + apply; these functions do not take it themselves.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

from compose_net.errors import DownErrors, OpFailed, RuntimeFailure
from compose_net.executor import preflight
from compose_net.executor.apply import Applier, unit_event
from compose_net.plan.ops import DnsStart, DnsStop, FileWrite, LinkDelete, LinkGroupDelete, Op, Plan, teardown
from compose_net.state import SUMMARY, Journal, list_projects

Progress = Optional[Callable[[tuple], None]]

FAIL_AFTER_ENV = "COMPOSE_NET_FAIL_AFTER"
SHARED_PREFIX = "shared:"
# Units whose ops replace their object in place (an atomic file rename, an atomic nft
# transaction): changed, they are re-applied without being torn down first.
IN_PLACE_UNITS = ("state", "firewall", "host")


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


def _present_shared(ops: tuple[Op, ...]) -> set[str]:
    """Shared units whose objects already exist (made by another project): not created again."""
    present = set()
    for unit, unit_ops in _units(ops).items():
        if not unit.startswith(SHARED_PREFIX):
            continue
        names = [key[2] for op in unit_ops for key in op.creates() if key[0] == "link" and key[1] is None]
        if names and all(preflight.host_link_exists(n) for n in names):
            present.add(unit)
    return present


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
    started = time.perf_counter()
    fail_after = _fail_after()
    journal = Journal(plan.project)
    try:
        prior = journal.read()
        if prior.ops and not prior.complete:
            # An `up` that never finished: clear what it may have made, then start afresh.
            errors = _undo(_teardown_for_down(plan.project, prior.ops))
            if errors:
                raise DownErrors(errors)
            journal.discard()
            prior = journal.read()
        if not prior.ops:
            result = _up_fresh(plan, journal, fail_after, progress)
        elif list(prior.ops) == list(plan.ops):
            result = UpResult(plan.project, changed=False, warnings=_revive_dns(plan))
        else:
            result = _up_diff(plan, journal, prior.ops, fail_after, progress)
    finally:
        journal.close()
    return UpResult(**{**result.__dict__, "seconds": time.perf_counter() - started})


def _revive_dns(plan: Plan) -> tuple[str, ...]:
    """Nothing to change in the kernel, but the DNS server is a process, not a kernel object:
    after a crash, a kill or a reboot of the process alone, an unchanged `up` starts it again."""
    start = next((op for op in plan.ops if isinstance(op, DnsStart)), None)
    if start is None:
        return ()
    from compose_net.dns import control

    if control.ensure_running(plan.project, start.records):
        return (f"the embedded DNS server of {plan.project} was not running: started it again",)
    return ()


def _up_fresh(plan: Plan, journal: Journal, fail_after: Optional[int], progress: Progress) -> UpResult:
    numbered = list(enumerate(plan.ops, 1))
    present = _present_shared(plan.ops)
    todo = [(seq, op) for seq, op in numbered if op.unit not in present]
    present_links = frozenset(
        key[2] for _, op in numbered if op.unit in present for key in op.creates() if key[0] == "link"
    )
    preflight.check(todo, present=present_links)
    # Shared objects that exist are journaled (we use them, so the last user removes them) but
    # not made, and not part of this run's rollback.
    journal.record([op for _, op in numbered if op.unit in present])
    ap = Applier(journal, progress=progress)
    try:
        ap.run(todo, fail_after, plan.ops)
        journal.mark_complete()
    except BaseException as exc:
        ap.close()
        errors = _undo(_teardown_for_down(plan.project, tuple(ap.done), context=plan.ops))
        if errors:  # the journal stays, unfinished, for `down` or the next `up`
            raise _with_rollback_errors(exc, errors) from exc
        journal.discard()
        raise
    finally:
        ap.close()
    units = tuple(_units(plan.ops))
    return UpResult(plan.project, True, created=units, ops_applied=ap.count, warnings=tuple(ap.warnings))


def _with_rollback_errors(exc: BaseException, errors: list[str]) -> BaseException:
    if isinstance(exc, OpFailed):
        return OpFailed(exc.seq, exc.description, exc.reason + "; rollback left: " + "; ".join(errors))
    return DownErrors([str(exc)] + errors)


def _dns_reload(ap: Applier, project: str) -> None:
    from compose_net.executor.apply import _peer

    control = _peer(ap, "compose_net.dns.control", "the embedded DNS server")
    if control is not None:
        control.reload(project)


def _without_containers(op: Op, names: set[str]) -> Op:
    """The summary FileWrite `op` with the containers `names` left out (other ops as they are)."""
    if not isinstance(op, FileWrite) or not op.path.endswith(SUMMARY):
        return op
    import json

    summary = json.loads(op.content)
    summary["containers"] = [c for c in summary.get("containers", ()) if c.get("name") not in names]
    return dataclasses.replace(op, content=json.dumps(summary, separators=(",", ":")) + "\n")


def _up_diff(
    plan: Plan, journal: Journal, old_ops: tuple[Op, ...], fail_after: Optional[int], progress: Progress
) -> UpResult:
    old, new = _units(old_ops), _units(plan.ops)
    removed = [u for u in old if u not in new]
    changed = [u for u in new if u in old and old[u] != new[u]]
    added = [u for u in new if u not in old]
    rebuilt = [u for u in changed if u not in IN_PLACE_UNITS]
    present = _present_shared(tuple(op for op in plan.ops if op.unit in added))
    todo_units = (set(added) | set(changed)) - present
    numbered = [(seq, op) for seq, op in enumerate(plan.ops, 1) if op.unit in todo_units]

    ours = frozenset(key for op in old_ops for key in op.creates())
    present_links = frozenset(
        key[2] for op in plan.ops if op.unit in present for key in op.creates() if key[0] == "link"
    )
    preflight.check(numbered, ours=ours, present=present_links)

    ap = Applier(journal, progress=progress)
    try:
        dns_running = "dns" in old and "dns" in new and "dns" not in changed
        containers_going = any(u.startswith("container:") for u in removed + rebuilt)
        if dns_running and containers_going:
            # A summary of the containers that stay first, so the DNS server lets go of the
            # sockets it holds in the namespaces about to be deleted (a socket keeps its
            # namespace alive), recreated ones included. Containers still to be made are left
            # out too: a namespace the server waits for would be opened by its retry, whose
            # status the reload after the build could take for its own answer.
            changing = {u.partition(":")[2] for u in removed + rebuilt + added if u.startswith("container:")}
            state_ops = [(s, _without_containers(op, changing)) for s, op in numbered if op.unit == "state"]
            ap.run(state_ops)
            _dns_reload(ap, plan.project)
        # Tear down what goes, newest first, link by link (the project's group stays in use).
        down_ops = [op for u in removed + rebuilt for op in old[u]]
        order = {id(op): i for i, op in enumerate(old_ops)}
        down_ops.sort(key=lambda op: order[id(op)])
        undo = _teardown_for_down(plan.project, tuple(down_ops), group_delete=False)
        errors = _undo(undo, progress)
        if errors:
            raise DownErrors(errors)
        kept = [op for op in old_ops if op.unit not in removed and op.unit not in rebuilt]
        journal.rewrite(kept + [op for op in plan.ops if op.unit in present], complete=False)
        ap.run(numbered, fail_after, plan.ops)
        if dns_running:
            ap.flush()
            _dns_reload(ap, plan.project)
        journal.rewrite(plan.ops, complete=True)
    except BaseException:
        ap.close()
        # Undo what this run made; the project is left partly torn down and its journal marked
        # unfinished, so the next `up` starts from a clean slate.
        _undo(_teardown_for_down(plan.project, tuple(ap.done), group_delete=False, context=plan.ops))
        kept_now = [op for op in journal.read().ops if op not in ap.done]
        journal.rewrite(kept_now, complete=False)
        raise
    finally:
        ap.close()
    return UpResult(
        plan.project,
        True,
        created=tuple(added),
        recreated=tuple(changed),
        removed=tuple(removed),
        ops_applied=ap.count,
        warnings=tuple(ap.warnings),
        updated=True,
    )


__all__ = ["UpResult", "up", "down", "plan_down"]
