"""Forwarding order against the real kernel: a container with `dns: [A, B, ...]` asks the embedded
server for a name the project does not know; the server asks A, and moves on to B when A answers
SERVFAIL or REFUSED or says nothing, as Docker's embedded resolver does.

The upstreams are stub servers this test runs in the uplink namespace it made (never the
machine's resolver), each on an address of its own there, over UDP and TCP; the server reaches
them from the host's namespace through the uplink's veth.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from conftest import sh
from test_dns_server import Project, ips, project, query  # noqa: F401 - project: the fixture

pytestmark = pytest.mark.kernel

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
ANSWERS = {"B": "198.51.100.77", "C": "198.51.100.78", "D": "198.51.100.79", "E": "198.51.100.80"}


class NamespaceStub:
    """A DNS server on IP:53 (UDP and TCP) inside namespace `ns`. `mode` is what it does with
    every question: "answer" (an A record of its own), "servfail", "refused", "nxdomain" or
    "silent" (reads, never answers). Records what it was asked, and over which transport."""

    def __init__(self, ns: str, ip: str, name: str, mode: str):
        self.ns, self.ip, self.name, self.mode = ns, ip, name, mode
        self.asked: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(5) and self.error is None, self.error

    def _run(self) -> None:
        try:
            fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
            try:
                # this thread only: the sockets it makes are born in the namespace
                assert _libc.setns(fd, CLONE_NEWNET) == 0, "setns failed"
            finally:
                os.close(fd)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.ip, 53))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self.ip, 53))
            tcp.listen(8)
        except BaseException as exc:  # handed to the constructor
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        udp.settimeout(0.05)
        tcp.settimeout(0.05)
        held = []
        with udp, tcp:
            while not self._stop.is_set():
                try:
                    data, peer = udp.recvfrom(4096)
                    reply = self._reply(data, "udp")
                    if reply is not None:
                        udp.sendto(reply, peer)
                except socket.timeout:
                    pass
                try:
                    conn, _ = tcp.accept()
                except socket.timeout:
                    continue
                conn.settimeout(2)
                try:
                    size = int.from_bytes(conn.recv(2), "big")
                    reply = self._reply(conn.recv(size), "tcp")
                    if reply is None:
                        held.append(conn)  # silent: keep it open, say nothing
                        continue
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
                except OSError:
                    pass
                conn.close()
        for conn in held:
            conn.close()

    def _reply(self, data: bytes, transport: str) -> bytes | None:
        q = DNSRecord.parse(data)
        self.asked.append((str(q.q.qname).lower(), transport))
        if self.mode == "silent":
            return None
        r = q.reply()
        if self.mode == "answer":
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ANSWERS[self.name]), ttl=60))
        else:
            r.header.rcode = {"servfail": RCODE.SERVFAIL, "refused": RCODE.REFUSED, "nxdomain": RCODE.NXDOMAIN}[self.mode]
        return bytes(r.pack())

    def close(self) -> None:
        self._stop.set()
        self.thread.join()


@pytest.fixture
def upstreams(uplink):
    """Start stubs in the uplink namespace: `start({"A": "servfail", "B": "answer"})` puts A on
    the uplink's own address and each next one on the address after it; their addresses."""
    stubs: list[NamespaceStub] = []
    base = uplink.peer_ip.rsplit(".", 1)

    def start(modes: dict[str, str]) -> dict[str, NamespaceStub]:
        out = {}
        for i, (name, mode) in enumerate(modes.items()):
            ip = f"{base[0]}.{int(base[1]) + i}"
            if i:
                sh("ip", "addr", "add", f"{ip}/24", "dev", uplink.peer_if, ns=uplink.ns)
            out[name] = NamespaceStub(uplink.ns, ip, name, mode)
            stubs.append(out[name])
        return out

    yield start
    for stub in stubs:
        stub.close()


def ask_both_ways(project: Project, stubs: dict[str, NamespaceStub], name: str) -> list[tuple]:
    project.add("web", 1, [("front", "172.20.0.2", [])], dns=[s.ip for s in stubs.values()])
    project.start()
    out = []
    for tcp in (False, True):
        start = time.monotonic()
        reply = query(project.ns("web"), f"{name}-{'tcp' if tcp else 'udp'}.example", tcp=tcp, timeout=5)
        out.append((reply, time.monotonic() - start))
    return out


@pytest.mark.parametrize("failure", ["servfail", "refused"])
def test_an_upstream_failing_sends_the_query_on_to_the_next(project, upstreams, failure):
    stubs = upstreams({"A": failure, "B": "answer"})
    for (reply, took), transport in zip(ask_both_ways(project, stubs, "far"), ("udp", "tcp")):
        assert reply.header.rcode == RCODE.NOERROR and ips(reply) == [ANSWERS["B"]]
        # at once: not after A's share of the forward timeout (1 s of 2 s)
        assert took < 0.9, f"{transport}: {took:.2f} s"
        name = f"far-{transport}.example."
        assert stubs["A"].asked.count((name, transport)) == 1
        assert stubs["B"].asked.count((name, transport)) == 1


def test_a_silent_upstream_is_given_up_on_and_the_next_answers(project, upstreams):
    stubs = upstreams({"A": "silent", "B": "answer"})
    for (reply, took), transport in zip(ask_both_ways(project, stubs, "quiet"), ("udp", "tcp")):
        assert ips(reply) == [ANSWERS["B"]]
        assert 0.8 < took < 2.5, f"{transport}: {took:.2f} s"  # A's share of the 2 s, then B
        assert (f"quiet-{transport}.example.", transport) in stubs["A"].asked


def test_an_nxdomain_is_an_answer_and_goes_to_the_client(project, upstreams):
    stubs = upstreams({"A": "nxdomain", "B": "answer"})
    for reply, _ in ask_both_ways(project, stubs, "gone"):
        assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []
    assert stubs["B"].asked == []


def test_only_three_upstreams_are_asked_then_servfail(project, upstreams):
    stubs = upstreams({"A": "servfail", "C": "refused", "D": "servfail", "E": "answer"})
    for reply, took in ask_both_ways(project, stubs, "fourth"):
        assert reply.header.rcode == RCODE.SERVFAIL and reply.rr == []
        assert took < 0.9
    assert stubs["E"].asked == []  # the fourth server is never asked, as by Docker
    assert all(len(stubs[n].asked) == 2 for n in "ACD")
    log = (project.state / "dns.log").read_text()
    assert "only the first 3 DNS servers" in log and stubs["E"].ip in log
