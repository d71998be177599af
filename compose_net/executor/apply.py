"""The op interpreter: a table from op kind to handler, plus batching and journaling.

Netlink ops aimed at the same namespace are queued and sent as one buffer with one ack; the
queue is flushed when the target namespace changes, when an index must be looked up, before any
op that is not netlink, and at unit boundaries (so progress reports what really exists).

Journaling: `run` records all the ops it is about to attempt in the journal, fsynced, before the
first of them reaches the kernel; so every batch is on record as pending before it is sent. The
journal may thus name things that were never made, never the reverse, and every inverse treats
"already gone" as done. One fsync per run rather than one per batch: where /run is a disk file
system (as on this machine) an fsync costs about a millisecond, more than a container's
whole kernel work. `done` keeps, in memory, what this run really sent, for its own rollback.

In undo mode (down, rollback) nothing is journaled, "already gone" is success, and errors are
collected instead of raised so that everything that can be removed is.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Callable, Optional, Sequence

from compose_net.errors import OpFailed
from compose_net.executor import files, namespaces, netlink
from compose_net.executor.netlink import GONE, NetlinkError, Rtnl
from compose_net.plan import ops as O
from compose_net.state import Journal

Progress = Optional[Callable[[tuple], None]]
_NO_BATCH = object()


def unit_event(unit: str) -> Optional[tuple[str, str]]:
    kind, _, name = unit.partition(":")
    if kind in ("network", "container") and name:
        return kind, name
    return None


class Applier:
    def __init__(self, journal: Optional[Journal], *, undo: bool = False, progress: Progress = None,
                 actions: Optional[dict[str, str]] = None):
        self.journal = journal
        self.undo = undo
        self.progress = progress
        self.actions = actions or {}  # unit -> what happens to it ("created", "removed", ...)
        self.home = namespaces.home_fd()
        self.sockets: dict[Optional[str], Rtnl] = {}
        self.nsfds: dict[str, int] = {}
        # link indexes by namespace, then name: `forget` drops one name or one namespace in O(1)
        self.indexes: dict[Optional[str], dict[str, int]] = {}
        self.batch: list[tuple[int, O.Op, int, bytes]] = []
        self.batch_ns: object = _NO_BATCH
        # settings that need the batch's links to exist first (sysfs knobs of a new bridge port)
        self.after_batch: list[tuple[int, O.Op, Callable[[], object]]] = []
        self.done: list[O.Op] = []  # journaled by this run, so rollback knows what to undo
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.count = 0

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        numbered: Sequence[tuple[int, O.Op]],
        fail_after: Optional[int] = None,
        plan_ops: Sequence[O.Op] = (),
    ) -> None:
        """Apply `numbered` ((plan position, op) pairs). `fail_after` K (COMPOSE_NET_FAIL_AFTER)
        fails right after plan op K, also when K is one this run skips (already there)."""
        if self.journal is not None and not self.undo:
            self.journal.record([op for _, op in numbered])
        unit: Optional[str] = None
        started = time.perf_counter()
        for seq, op in numbered:
            if fail_after is not None and seq > fail_after and plan_ops:
                self._inject(fail_after, plan_ops[fail_after - 1])
            if op.unit != unit:
                self.flush()
                if unit is not None:
                    self._report(unit, started)
                unit, started = op.unit, time.perf_counter()
            handler = HANDLERS.get(op.kind)
            if handler is None:
                self.fail(seq, op, f"no handler for op kind {op.kind!r}")
                continue
            if isinstance(op, O.LinkGroupDelete):
                # Every link of the project (all its networks' bridges and veths) goes in this
                # one call, queued in whichever unit comes first: not that unit's own time.
                started += self._timed(lambda: handler(self, seq, op))
            else:
                handler(self, seq, op)
            self.count += 1
            if fail_after is not None and seq == fail_after:
                self._inject(fail_after, op)
        self.flush()
        if unit is not None:
            self._report(unit, started)
        if fail_after is not None and 0 < fail_after <= len(plan_ops):
            self._inject(fail_after, plan_ops[fail_after - 1])

    def _inject(self, k: int, op: O.Op) -> None:
        self.flush()
        raise OpFailed(k, op.describe(), f"injected failure (COMPOSE_NET_FAIL_AFTER={k})")

    def _timed(self, action: Callable[[], None]) -> float:
        """Seconds `action` takes, its batch sent; what was queued before it is sent first."""
        self.flush()
        begun = time.perf_counter()
        action()
        self.flush()
        return time.perf_counter() - begun

    def _report(self, unit: str, started: float) -> None:
        event = unit_event(unit)
        if self.progress and event:
            action = self.actions.get(unit) or ("removed" if self.undo else "created")
            self.progress((event[0], event[1], action, time.perf_counter() - started))

    def fail(self, seq: int, op: O.Op, reason: str) -> None:
        if self.undo:
            self.errors.append(f"{op.describe()}: {reason}")
            return
        raise OpFailed(seq, op.describe(), reason)

    def close(self) -> None:
        """Close every socket and namespace descriptor: an open one would keep a namespace
        (and the host end of its veths) alive after `down`."""
        for sock in self.sockets.values():
            sock.close()
        for fd in self.nsfds.values():
            os.close(fd)
        self.sockets.clear()
        self.nsfds.clear()
        if self.home >= 0:
            os.close(self.home)
            self.home = -1

    # --- netlink batching ------------------------------------------------------------------

    def socket(self, ns: Optional[str]) -> Rtnl:
        sock = self.sockets.get(ns)
        if sock is None:
            if ns is None:
                sock = Rtnl()
            else:
                sock = namespaces.run_inside(self.ns_fd(ns), self.home, Rtnl)
            self.sockets[ns] = sock
        return sock

    def ns_fd(self, ns: str) -> int:
        fd = self.nsfds.get(ns)
        if fd is None:
            fd = self.nsfds[ns] = namespaces.open_fd(ns)
        return fd

    def index(self, ns: Optional[str], name: str) -> Optional[int]:
        known = self.indexes.setdefault(ns, {})
        found = known.get(name)
        if found is None:
            if self.batch and self.batch_ns is None:
                # Links are made on the host's socket only (a veth's peer, a macvlan, born in
                # their namespace): a host batch not yet sent may hold this one. A container's
                # own batch (links up, addresses) makes none, and stays queued.
                self.flush()
            found = self.socket(ns).link_index(name)
            if found is None:
                return None
            known[name] = found
        return found

    def forget(self, ns: Optional[str], name: Optional[str] = None) -> None:
        if name is None:
            self.indexes.pop(ns, None)
        else:
            self.indexes.get(ns, {}).pop(name, None)

    def queue(self, ns: Optional[str], seq: int, op: O.Op, build: Callable[[int], bytes]) -> None:
        if self.batch and self.batch_ns != ns:
            self.flush()
        try:
            sock = self.socket(ns)
        except FileNotFoundError:
            if self.undo:
                return  # the namespace is gone, and this op's object with it
            self.fail(seq, op, f"network namespace {ns} does not exist")
            return
        msg_seq = sock.next_seq()
        self.batch_ns = ns
        self.batch.append((seq, op, msg_seq, build(msg_seq)))

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        ns, self.batch_ns = self.batch_ns, _NO_BATCH
        self._journal([op for _, op, _, _ in batch])
        errors = self.sockets[ns].send([data for *_, data in batch])  # type: ignore[index]
        failed = [(seq, op, errors[m]) for seq, op, m, _ in batch if m in errors]
        for seq, op, err in failed:
            if (self.undo or op.removal) and err.code in GONE:
                continue
            if not self.undo and err.code == errno.EEXIST:
                # The name is taken by someone else, whose object our rollback must not touch.
                self.done = [o for o in self.done if o is not op]
            self.fail(seq, op, str(err))
        pending, self.after_batch = self.after_batch, []
        for seq, op, action in pending:
            try:
                action()
            except OSError as exc:
                self.fail(seq, op, f"{exc.strerror or exc}")

    def _journal(self, ops: list[O.Op]) -> None:
        if not self.undo:
            self.done.extend(ops)

    def direct(self, seq: int, op: O.Op, action: Callable[[], object]) -> None:
        """Run a non-netlink op now, after everything queued before it."""
        self.flush()
        self._journal([op])
        try:
            action()
        except (NetlinkError, OSError) as exc:
            if (self.undo or op.removal) and isinstance(exc, NetlinkError) and exc.code in GONE:
                return
            if not self.undo and getattr(exc, "errno", None) == errno.EEXIST:
                # A namespace name refused as taken is someone else's: not ours to delete.
                self.done = [o for o in self.done if o is not op]
            reason = str(exc) if isinstance(exc, NetlinkError) else (exc.strerror or str(exc))
            self.fail(seq, op, reason)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


# --- handlers --------------------------------------------------------------------------------


def _netns_create(ap: Applier, seq: int, op: O.NetnsCreate) -> None:
    def inside() -> Rtnl:
        sock = Rtnl()
        try:
            errors = sock.send([netlink.set_up(sock.next_seq(), "lo")])
            if errors:
                raise next(iter(errors.values()))
        except BaseException:
            sock.close()
            raise
        return sock

    def create() -> None:
        try:
            fd, sock = namespaces.create(op.name, ap.home, inside)
        except FileExistsError:
            raise OSError(errno.EEXIST, f"network namespace {op.name} already exists") from None
        ap.nsfds[op.name] = fd
        ap.sockets[op.name] = sock
        ap.indexes[op.name] = {"lo": 1}

    ap.direct(seq, op, create)


def _netns_delete(ap: Applier, seq: int, op: O.NetnsDelete) -> None:
    def delete() -> None:
        sock = ap.sockets.pop(op.name, None)
        if sock is not None:
            sock.close()
        fd = ap.nsfds.pop(op.name, None)
        if fd is not None:
            os.close(fd)
        ap.forget(op.name)
        namespaces.delete(op.name)

    ap.direct(seq, op, delete)


def _claimed(what: str, name: str, action: Callable[[], object]) -> Callable[[], None]:
    """`action`, with a name someone already holds reported as such (EEXIST: not ours to undo)."""
    def run() -> None:
        try:
            action()
        except FileExistsError:
            raise OSError(errno.EEXIST, f"{what} {name} already exists") from None

    return run


def _netns_alias(ap: Applier, seq: int, op: O.NetnsAlias) -> None:
    ap.direct(seq, op, _claimed("network namespace", op.name, lambda: namespaces.alias(op.name, op.target)))


def _uts_create(ap: Applier, seq: int, op: O.UtsCreate) -> None:
    ap.direct(seq, op, _claimed("uts namespace", op.name,
                                lambda: namespaces.create_uts(op.name, op.hostname, op.domainname)))


def _uts_alias(ap: Applier, seq: int, op: O.UtsAlias) -> None:
    ap.direct(seq, op, _claimed("uts namespace", op.name, lambda: namespaces.alias(op.name, op.target, uts=True)))


def _uts_delete(ap: Applier, seq: int, op: O.UtsDelete) -> None:
    ap.direct(seq, op, lambda: namespaces.delete_uts(op.name))


def _sysctl(ap: Applier, seq: int, op: O.SysctlSet) -> None:
    key = op.key if "/" in op.key else op.key.replace(".", "/")
    path = "/proc/sys/" + key

    def write() -> None:
        # /proc/sys/net resolves to the namespace of whoever opens it: open while inside.
        with open(path, "w") as fh:
            fh.write(op.value)

    if op.ns is None:
        ap.direct(seq, op, write)
    else:
        ap.direct(seq, op, lambda: namespaces.run_inside(ap.ns_fd(op.ns), ap.home, write))


def _host_index(ap: Applier, seq: int, op: O.Op, name: Optional[str], what: str) -> Optional[int]:
    if name is None:
        return None
    index = ap.index(None, name)
    if index is None:
        ap.fail(seq, op, f"{what} {name} does not exist")
    return index


def _bridge_create(ap: Applier, seq: int, op: O.BridgeCreate) -> None:
    ap.forget(None, op.name)
    ap.queue(None, seq, op, lambda s: netlink.new_bridge(s, op.name, op.group, op.mtu, op.mac))


def _veth_create(ap: Applier, seq: int, op: O.VethCreate) -> None:
    master = _host_index(ap, seq, op, op.master, "bridge")
    fd = _target_fd(ap, seq, op, op.peer_ns)
    ap.forget(None, op.name)
    ap.forget(op.peer_ns, op.peer_name)
    ap.queue(
        None, seq, op,
        lambda s: netlink.new_veth(s, op.name, op.group, master, op.mtu, op.peer_name, fd, op.peer_mac),
    )
    if op.hairpin and not ap.undo:
        # No netlink attribute sets a bridge port flag while the port is being created; the
        # port's sysfs knob works once the batch has made it.
        knob = f"/sys/class/net/{op.name}/brport/hairpin_mode"
        ap.after_batch.append((seq, op, lambda: _write_knob(knob, "1")))


def _write_knob(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _target_fd(ap: Applier, seq: int, op: O.Op, ns: str) -> int:
    try:
        return ap.ns_fd(ns)
    except FileNotFoundError:
        ap.fail(seq, op, f"network namespace {ns} does not exist")
        return -1


def _macvlan_create(ap: Applier, seq: int, op: O.MacvlanCreate) -> None:
    parent = _host_index(ap, seq, op, op.parent, "parent interface")
    fd = _target_fd(ap, seq, op, op.ns)
    ap.forget(op.ns, op.name)
    ap.queue(None, seq, op, lambda s: netlink.new_macvlan(s, op.name, parent, fd, op.mode, op.mac, op.mtu))


def _ipvlan_create(ap: Applier, seq: int, op: O.IpvlanCreate) -> None:
    parent = _host_index(ap, seq, op, op.parent, "parent interface")
    fd = _target_fd(ap, seq, op, op.ns)
    ap.forget(op.ns, op.name)
    ap.queue(None, seq, op, lambda s: netlink.new_ipvlan(s, op.name, parent, fd, op.mode, op.flag, op.mtu))


def _vlan_create(ap: Applier, seq: int, op: O.VlanCreate) -> None:
    parent = _host_index(ap, seq, op, op.parent, "parent interface")
    ap.forget(None, op.name)
    ap.queue(None, seq, op, lambda s: netlink.new_vlan(s, op.name, parent, op.vlan_id, op.group))


def _vxlan_create(ap: Applier, seq: int, op: O.VxlanCreate) -> None:
    master = _host_index(ap, seq, op, op.master, "bridge")
    dev = _host_index(ap, seq, op, op.dev, "interface")
    ap.forget(None, op.name)
    ap.queue(
        None, seq, op,
        lambda s: netlink.new_vxlan(s, op.name, op.vni, op.group, master, op.port, op.local, op.remote, dev, op.mtu,
                                    op.learning, op.proxy),
    )


def _link_up(ap: Applier, seq: int, op: O.LinkUp) -> None:
    ap.queue(op.ns, seq, op, lambda s: netlink.set_up(s, op.name))


def _link_delete(ap: Applier, seq: int, op: O.LinkDelete) -> None:
    ap.forget(op.ns, op.name)
    ap.queue(op.ns, seq, op, lambda s: netlink.del_link(s, op.name))


def _link_group_delete(ap: Applier, seq: int, op: O.LinkGroupDelete) -> None:
    ap.forget(None)
    ap.queue(None, seq, op, lambda s: netlink.del_group(s, op.group))


def _dev_index(ap: Applier, seq: int, op: O.Op, ns: Optional[str], dev: str) -> Optional[int]:
    try:
        index = ap.index(ns, dev)
    except FileNotFoundError:
        index = None
        if not ap.undo:
            ap.fail(seq, op, f"network namespace {ns} does not exist")
            return None
    if index is None and not ap.undo:
        ap.fail(seq, op, f"link {dev} does not exist")
    return index  # None in undo mode: the link is gone, and the address or route with it


def _on_dev(encode):
    """The handler of an op on one link (`op.dev`, in `op.ns`; the host for FDB and neighbour
    entries): the link's index looked up, then `encode(seq, index, op)` queued."""
    def handler(ap: Applier, seq: int, op) -> None:
        ns = getattr(op, "ns", None)
        index = _dev_index(ap, seq, op, ns, op.dev)
        if index is not None:
            ap.queue(ns, seq, op, lambda s: encode(s, index, op))

    return handler


def _addr(add: bool):
    return _on_dev(lambda s, index, op: netlink.addr(s, add, index, op.address))


def _fdb(add: bool):
    return _on_dev(lambda s, index, op: netlink.fdb(s, add, index, op.mac, op.dst))


def _neigh(add: bool):
    return _on_dev(lambda s, index, op: netlink.neigh(s, add, index, op.address, op.mac))


def _route(add: bool):
    return _on_dev(lambda s, index, op: netlink.route(s, add, op.dst, index, op.gateway, op.metric))


def _file_write(ap: Applier, seq: int, op: O.FileWrite) -> None:
    ap.direct(seq, op, lambda: files.write_atomic(op.path, op.content, op.mode))


def _file_remove(ap: Applier, seq: int, op: O.FileRemove) -> None:
    ap.direct(seq, op, lambda: files.remove(op.path))


def _peer(ap: Applier, module: str, what: str):
    """Import a module another part of compose-net provides; None (and a warning) if absent."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        ap.warn(f"{what} is not available yet ({module} is missing): skipped")
        return None


def _nft_apply(ap: Applier, seq: int, op: O.NftApply) -> None:
    nft = _peer(ap, "compose_net.executor.nft", "the firewall")
    _guarded(ap, seq, op, lambda: nft and nft.apply_table(op.family, op.table, op.ruleset))


def _nft_delete(ap: Applier, seq: int, op: O.NftDelete) -> None:
    nft = _peer(ap, "compose_net.executor.nft", "the firewall")
    _guarded(ap, seq, op, lambda: nft and nft.delete_table(op.family, op.table))


def _iptables(add: bool):
    def handler(ap: Applier, seq: int, op) -> None:
        from compose_net.executor import iptables

        action = iptables.insert if add else iptables.delete
        _guarded(ap, seq, op, lambda: action(op.family, op.table, op.chain, op.rule))
    return handler


def _firewalld(add: bool):
    def handler(ap: Applier, seq: int, op) -> None:
        from compose_net.executor import firewalld

        action = firewalld.add_interface if add else firewalld.remove_interface
        _guarded(ap, seq, op, lambda: action(op.zone, op.interface))
    return handler


def _dns_start(ap: Applier, seq: int, op: O.DnsStart) -> None:
    control = _peer(ap, "compose_net.dns.control", "the embedded DNS server")
    _guarded(ap, seq, op, lambda: control and control.start(op.project, op.records))


def _dns_stop(ap: Applier, seq: int, op: O.DnsStop) -> None:
    control = _peer(ap, "compose_net.dns.control", "the embedded DNS server")
    _guarded(ap, seq, op, lambda: control and control.stop(op.project))


def _guarded(ap: Applier, seq: int, op: O.Op, action: Callable[[], object]) -> None:
    """Like `direct`, but the peer modules raise their own errors: report them as this op's."""
    from compose_net.errors import ComposeNetError

    def run() -> None:
        try:
            action()
        except ComposeNetError as exc:
            raise OSError(errno.EIO, str(exc)) from exc

    ap.direct(seq, op, run)


HANDLERS: dict[str, Callable[[Applier, int, O.Op], None]] = {
    O.SysctlSet.kind: _sysctl,
    O.NetnsCreate.kind: _netns_create,
    O.NetnsDelete.kind: _netns_delete,
    O.NetnsAlias.kind: _netns_alias,
    O.UtsCreate.kind: _uts_create,
    O.UtsAlias.kind: _uts_alias,
    O.UtsDelete.kind: _uts_delete,
    O.BridgeCreate.kind: _bridge_create,
    O.VethCreate.kind: _veth_create,
    O.MacvlanCreate.kind: _macvlan_create,
    O.IpvlanCreate.kind: _ipvlan_create,
    O.VlanCreate.kind: _vlan_create,
    O.VxlanCreate.kind: _vxlan_create,
    O.LinkUp.kind: _link_up,
    O.LinkDelete.kind: _link_delete,
    O.LinkGroupDelete.kind: _link_group_delete,
    O.AddrAdd.kind: _addr(True),
    O.AddrDel.kind: _addr(False),
    O.FdbSet.kind: _fdb(True),
    O.FdbDel.kind: _fdb(False),
    O.NeighSet.kind: _neigh(True),
    O.NeighDel.kind: _neigh(False),
    O.RouteAdd.kind: _route(True),
    O.RouteDel.kind: _route(False),
    O.FileWrite.kind: _file_write,
    O.FileRemove.kind: _file_remove,
    O.NftApply.kind: _nft_apply,
    O.NftDelete.kind: _nft_delete,
    O.IptablesInsert.kind: _iptables(True),
    O.IptablesDelete.kind: _iptables(False),
    O.FirewalldAdd.kind: _firewalld(True),
    O.FirewalldRemove.kind: _firewalld(False),
    O.DnsStart.kind: _dns_start,
    O.DnsStop.kind: _dns_stop,
}
