"""Forwarding a query that is not the project's, the way Docker's embedded resolver does. Sans-I/O:
the server owns the sockets and the clock; an `Exchange` says which upstream to ask next, what to
send it, until when to wait, and what an upstream's answer means.

Docker's order (libnetwork's resolver): the asker's upstreams in turn, at most three (`records`
keeps only the first three); a timeout, an upstream that cannot be reached, SERVFAIL or REFUSED
moves on to the next; any other answer, NXDOMAIN included, goes to the client; when none is left
the client gets SERVFAIL. Docker waits up to 4 s for each upstream; here all of them share one
budget (the server's forward timeout, 2 s: less than a client's own 5 s for its first try), each
attempt getting an even share of what is left, so an upstream that fails fast leaves its share to
the next.

dnslib writes the packet for the upstream (the client's query with a fresh random ID) and reads
the header and question of what comes back: that is what the decision needs. The answer's records
go to the client as the upstream wrote them, with the client's ID put back, so no record dnslib
cannot read or would write differently (it refuses, say, an empty record) costs the client its
answer. An answer too large for the client's UDP size is replaced by its header and question
with TC set (dnslib writes it): the client retries over TCP.
"""

from __future__ import annotations

import random
from typing import Callable, Optional, Sequence

from dnslib import RCODE, DNSBuffer, DNSHeader, DNSQuestion, DNSRecord

from compose_net.dns.records import IPAddress
from compose_net.dns.resolver import error_reply, truncated

IGNORE, NEXT, RELAY = 0, 1, 2
MOVE_ON = frozenset((RCODE.SERVFAIL, RCODE.REFUSED))


class Exchange:
    """One forwarded query's walk over its upstreams."""

    def __init__(self, query: DNSRecord, upstreams: Sequence[IPAddress], deadline: float,
                 limit: Optional[int], random_id: Callable[[int], int] = random.getrandbits):
        """`query` as dnslib parsed it from the client; `deadline` on the caller's clock; `limit`
        the client's UDP size (None over TCP: any size goes)."""
        self.query = query
        self.upstreams = tuple(upstreams)
        self.deadline = deadline
        self.limit = limit
        self.attempt = -1
        self.qid: Optional[int] = None  # the ID the upstream asked now must answer with
        self._random_id = random_id

    @property
    def upstream(self) -> Optional[IPAddress]:
        return self.upstreams[self.attempt] if self.qid is not None else None

    def next(self, now: float) -> Optional[tuple[IPAddress, bytes, float]]:
        """The next upstream, the packet to send it and when to stop waiting for it; None when
        every upstream has been tried or the time is up (then the client gets `failure()`)."""
        self.qid = None
        self.attempt += 1
        left = len(self.upstreams) - self.attempt
        if left <= 0 or now >= self.deadline:
            return None
        client_id = self.query.header.id
        qid = self._random_id(16)
        self.query.header.id = qid
        try:
            packet = self.query.pack()
        except Exception:  # noqa: BLE001 - what dnslib read from a client but cannot write back
            return None  # (a name longer than 253, say): no upstream is asked, the client gets SERVFAIL
        finally:
            self.query.header.id = client_id
        self.qid = qid
        return self.upstreams[self.attempt], packet, now + (self.deadline - now) / left

    def judge(self, data: bytes) -> tuple[int, Optional[bytes]]:
        """What the upstream asked now sent means. IGNORE: not an answer to our question (keep
        waiting); NEXT: it failed (SERVFAIL, REFUSED), ask the next one; RELAY with the reply for
        the client."""
        buffer = DNSBuffer(data)
        try:
            header = DNSHeader.parse(buffer)
            question = DNSQuestion.parse(buffer) if header.q else None
        except Exception:  # noqa: BLE001 - whatever dnslib refuses is no answer
            return IGNORE, None
        if self.qid is None or header.id != self.qid or not header.qr:
            return IGNORE, None
        if question is not None and not _same(question, self.query.q):
            return IGNORE, None
        if header.rcode in MOVE_ON:
            return NEXT, None
        self.qid = None
        client_id = self.query.header.id
        if self.limit is not None and len(data) > self.limit:
            return RELAY, truncated(DNSRecord(header, questions=[question] if question else []), client_id)
        return RELAY, client_id.to_bytes(2, "big") + data[2:]

    def failure(self) -> bytes:
        """The client's reply when no upstream gave an answer: SERVFAIL, as Docker's."""
        return error_reply(self.query, RCODE.SERVFAIL)


def _same(a: DNSQuestion, b: DNSQuestion) -> bool:
    # DNSLabel compares without letter case: an upstream may answer in another case (0x20).
    return a.qtype == b.qtype and a.qclass == b.qclass and a.qname == b.qname
