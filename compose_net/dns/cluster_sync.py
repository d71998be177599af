"""The background process's part in a cluster: it keeps this host's lease alive (re-registering
the host and its endpoints when the lease was lost, e.g. while etcd was down) and follows the
other hosts' endpoints in the store: their FDB and neighbour entries on this host's VXLAN devices
(through executor/netlink.py) and the DNS names the server answers for them.

Each overlay network's endpoints are watched (an etcd watch per network through etcd3gw): a
change wakes the follower, which reads the network's endpoints and programs the difference. The
store is also read every POLL seconds, because a watch whose stream broke says nothing; that read
is what notices a lost connection, and the follower then reconnects and watches anew.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from compose_net import cluster
from compose_net.summary import Summary, from_text

log = logging.getLogger("compose_net.dns")

POLL = 2.0  # seconds between reads of the store when no watch event came


class ClusterSync:
    def __init__(self, records: Path, on_change: Callable[[], None]):
        self.records = records
        self.on_change = on_change
        self._stamp: tuple = ()
        self._local()  # a records file that cannot be read fails here, before serving
        # the first read programs every endpoint again (entries are replaced, not added twice);
        # those that left while no follower ran went with `up`'s reconcile
        self.remote: frozenset = frozenset()
        self.lock = threading.Lock()
        from compose_net.executor import netlink

        self.rtnl = netlink.Rtnl()  # opened here, on the main thread, in the host's namespace
        self.ttl = cluster.ttl_setting(os.environ)  # the environment of the `up` that started us
        self.keepalive = self.ttl / 3  # two refreshes may fail before the lease expires
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cluster-sync", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _local(self) -> Summary:
        """The recorded state, parsed again only when `up` replaced the file (it is read on
        every wake of the follower)."""
        st = os.stat(self.records)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._summary, self._stamp = from_text(self.records.read_text(), str(self.records)), stamp
        return self._summary

    def merge(self, summary: Summary) -> Summary:
        """The recorded state with the other hosts' endpoints as the store has them now."""
        with self.lock:
            remote = self.remote
        return cluster.merged(summary, remote)

    def _run(self) -> None:
        store: Optional[cluster.Store] = None
        lease: Optional[int] = None
        cancels: list = []
        next_keepalive = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                summary = self._local()
                if store is None:
                    store = cluster.store_of(summary, timeout=2)
                    cancels = [store.watch_prefix(f"networks/{n.name}/endpoints/", self._wake.set)
                               for n in summary.networks if n.vxlan is not None]
                    next_keepalive, lease = 0.0, None
                if time.monotonic() >= next_keepalive:
                    # a refresh only; everything is written again only when the lease was lost
                    # (each write would wake every other host's watch)
                    if lease is None or not store.keepalive(lease):
                        lease = cluster.register(store, summary, self.ttl)
                    next_keepalive = time.monotonic() + self.keepalive
                self._follow(store, summary)
            except cluster.ClusterError as exc:
                log.warning("cluster store: %s (retrying)", exc)
                store = self._unwatch(cancels)
            except Exception as exc:  # the DNS server must go on serving whatever happens here
                log.error("cluster sync: %s", exc)
            self._wake.wait(min(POLL, max(0.0, next_keepalive - time.monotonic())) if store else 1.0)
        self._unwatch(cancels)

    @staticmethod
    def _unwatch(cancels: list) -> None:
        for cancel in cancels:
            try:
                cancel()
            except Exception:
                pass
        cancels.clear()

    def _follow(self, store: cluster.Store, summary: Summary) -> None:
        me = str(store.underlay_address())
        devices = {n.name: n.vxlan.name for n in summary.networks if n.vxlan is not None}
        now = frozenset(ep for net in devices for ep in store.endpoints(net) if ep.host != me)
        with self.lock:
            before = self.remote
        if now == before:
            return
        from compose_net.executor import netlink  # imported by ClusterSync() already: a lookup

        messages = []
        for ep in before - now:
            index = self.rtnl.link_index(devices[ep.network])
            if index is not None:
                messages.append(netlink.neigh(self.rtnl.next_seq(), False, index, ep.address, ep.mac))
                messages.append(netlink.fdb(self.rtnl.next_seq(), False, index, ep.mac, ep.vtep))
        for ep in now - before:
            index = self.rtnl.link_index(devices[ep.network])
            if index is not None:
                messages.append(netlink.fdb(self.rtnl.next_seq(), True, index, ep.mac, ep.vtep))
                messages.append(netlink.neigh(self.rtnl.next_seq(), True, index, ep.address, ep.mac))
        for seq, err in self.rtnl.send(messages).items():
            if err.code not in netlink.GONE:
                log.warning("cluster sync: netlink message %d: %s", seq, err)
        with self.lock:
            self.remote = now
        log.info("cluster: %d endpoints on other hosts (was %d)", len(now), len(before))
        self.on_change()
