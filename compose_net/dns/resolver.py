"""The resolver core: one query packet and the asker's view in, what to do out. No sockets.

A query that misses the reply cache is parsed by dnslib; `records.respond` decides what the asker
is told (dnslib records and an rcode, or "not ours": forward it); dnslib encodes the reply,
truncated to what the client can take over UDP (its EDNS size, 512 without one, at most 4096).

The reply cache keeps the hot path off dnslib. It maps the query's header bytes 2-11 and its
question bytes, exactly as sent, to the encoded reply without its ID; a hit is a dict lookup and a
byte join. It lives per view scope (containers that see the same answers share it) and holds
only replies of at most 512 bytes, which are the same whatever EDNS size a client advertises. A
key is stored only when dnslib's reply echoes those question bytes unchanged, so the asker's
letter case comes back as sent and a key always names the question dnslib parsed. EDNS options
(cookies make every packet unique) follow the question and are not part of the key. Replies of
several records are stored as the bytes dnslib wrote for each record, joined in a new order on
every hit (Docker shuffles replicas per query).

What is still read by hand, all of it on the hit path, which must not parse: the ID (bytes 0-1,
copied into the reply), the flags and counts (bytes 2-11, part of the key), and the question's
end (the first zero byte after offset 12, the root label, plus type and class) to cut the key.
The server's batched UDP loop inlines the same lookup. Every byte of a reply but that copied ID
is dnslib's.

Outcomes: ANSWER (reply bytes), FORWARD (the parsed query: the caller sends it upstream), DROP
(not a query we may answer: shorter than a header, or a response, which would make reflection
loops).
"""

from __future__ import annotations

import functools
import random
from typing import Callable, Optional, Union

from dnslib import OPCODE, QTYPE, RCODE, DNSBuffer, DNSError, DNSHeader, DNSQuestion, DNSRecord
from dnslib.label import DNSLabelError

from compose_net.dns.records import View, respond

ANSWER, FORWARD, DROP = 0, 1, 2

UDP_LIMIT = 512  # without EDNS a client may expect no more
# Our own answers honour the client's EDNS size, as Docker's resolver does (it too sends no OPT
# record back), up to what one datagram slot of the server holds.
EDNS_LIMIT = 4096
CACHE_LIMIT = 1024  # entries per scope (bounds memory under random names); a full cache is dropped whole
# dnslib's names for the numbers, looked up once (each lookup in its tables is a Python call)
QUERY, FORMERR, SERVFAIL, NOTIMP, TYPE_OPT = OPCODE.QUERY, RCODE.FORMERR, RCODE.SERVFAIL, RCODE.NOTIMP, QTYPE.OPT

# A cache entry: the reply without its ID, or for several records (the reply's header and
# question without the ID, each record's encoding in the records' order).
Entry = Union[bytes, tuple[bytes, tuple[bytes, ...]]]


def edns_size(query: DNSRecord) -> int:
    """The UDP payload size the client advertised in its OPT record (512 when it sent none)."""
    for rr in query.ar:
        if rr.rtype == TYPE_OPT:
            return max(UDP_LIMIT, rr.rclass)  # an OPT record's class field is the size
    return UDP_LIMIT


def reply_header(query: DNSHeader, rcode: int, aa: bool = False) -> DNSHeader:
    """A response header for `query`: its ID, opcode and RD bit; recursion available."""
    return DNSHeader(id=query.id, bitmap=_reply_flags(query.opcode, query.rd, rcode, int(aa)))


@functools.lru_cache(maxsize=None)  # at most 16 opcodes x 2 x 16 rcodes x 2
def _reply_flags(opcode: int, rd: int, rcode: int, aa: int) -> int:
    # dnslib sets each flag through a validating property: a quarter of a miss's time when done
    # per reply, so the flags word it makes is kept for each combination.
    return DNSHeader(id=0, qr=1, opcode=opcode, aa=aa, rd=rd, ra=1, rcode=rcode).bitmap


def error_reply(query: DNSRecord, rcode: int) -> bytes:
    """A reply without records: `rcode`, the asker's ID, its question when it asked exactly one."""
    questions = query.questions if len(query.questions) == 1 else []
    try:
        return DNSRecord(reply_header(query.header, rcode), questions=questions).pack()
    except DNSLabelError:  # a name dnslib read but cannot write back (longer than 253)
        return DNSRecord(reply_header(query.header, rcode)).pack()


def truncated(reply: DNSRecord, qid: int) -> bytes:
    """`reply`'s header (with ID `qid`) and question, TC set: the client retries over TCP."""
    header = DNSHeader(id=qid, bitmap=reply.header.bitmap)
    header.tc = 1
    return DNSRecord(header, questions=reply.questions[:1]).pack()


def encode(header: DNSHeader, question: DNSQuestion, records: list) -> tuple[bytes, tuple[bytes, ...]]:
    """dnslib's encoding of a reply (what `DNSRecord.pack` writes) and, cut where dnslib wrote
    each, every answer record's bytes. Their owner name is the question's, which dnslib compresses
    to a pointer to offset 12, so each record's bytes stand alone and can be reordered."""
    header.q, header.a = 1, len(records)
    buffer = DNSBuffer()
    header.pack(buffer)
    question.pack(buffer)
    cuts = [len(buffer.data)]
    for rr in records:
        rr.pack(buffer)
        cuts.append(len(buffer.data))
    data = bytes(buffer.data)
    return data, tuple(data[a:b] for a, b in zip(cuts, cuts[1:]))


def _malformed(data: bytes) -> tuple[int, Optional[bytes]]:
    """What a packet dnslib cannot parse whole gets: FORMERR (NOTIMP for other opcodes), with its
    question when that much parses; nothing when it is not even a query header."""
    buffer = DNSBuffer(data)
    try:
        header = DNSHeader.parse(buffer)
    except DNSError:
        return DROP, None
    if header.qr:
        return DROP, None
    query = DNSRecord(header)
    if header.q == 1:
        try:
            query.questions = [DNSQuestion.parse(buffer)]
        except Exception:  # noqa: BLE001 - whatever dnslib refuses in the question
            pass
    return ANSWER, error_reply(query, NOTIMP if header.opcode != QUERY else FORMERR)


class Resolver:
    """Answers queries for one set of records. `shuffle` is injectable for tests."""

    def __init__(self, shuffle: Callable[[list], None] = random.shuffle, cache_limit: int = CACHE_LIMIT):
        self.shuffle = shuffle
        self.cache_limit = cache_limit
        self.caches: dict[tuple, dict[bytes, Entry]] = {}

    def cache_for(self, view: View) -> dict[bytes, Entry]:
        cache = self.caches.get(view.scope)
        if cache is None:
            cache = self.caches[view.scope] = {}
        return cache

    def handle(self, view: View, data: bytes, tcp: bool = False, cache: Optional[dict] = None) -> tuple[int, object]:
        if data.__class__ is not bytes:  # bytearray/memoryview: the cache needs hashable keys
            data = bytes(data)
        if cache is None:
            cache = self.cache_for(view)
        # The hit: the same header bytes 2-11 and question, byte for byte, as an earlier query
        # that dnslib parsed and whose reply was stored; the reply differs only in the ID.
        hit = cache.get(data[2 : data.find(b"\0", 12) + 5])
        if hit is not None:
            if hit.__class__ is bytes:
                return ANSWER, data[:2] + hit
            order = list(hit[1])
            self.shuffle(order)
            return ANSWER, data[:2] + hit[0] + b"".join(order)
        return self._miss(view, data, tcp, cache)

    def _miss(self, view: View, data: bytes, tcp: bool, cache: dict) -> tuple[int, object]:
        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - hostile bytes: whatever dnslib refuses is malformed
            return _malformed(data)
        header = query.header
        if header.qr:
            return DROP, None
        if header.opcode != QUERY:
            return ANSWER, error_reply(query, NOTIMP)
        if len(query.questions) != 1:
            return ANSWER, error_reply(query, FORMERR)
        decided = respond(view, query.q)
        if decided is None:
            return FORWARD, query
        order = list(range(len(decided.records)))
        if len(order) > 1:
            self.shuffle(order)
        records = [decided.records[i] for i in order]
        head = reply_header(header, decided.rcode, aa=True)
        try:
            reply, blocks = encode(head, query.q, records)
        except DNSLabelError:  # the asker's name or a target too long to write back
            return ANSWER, error_reply(query, SERVFAIL)
        if len(reply) <= UDP_LIMIT:
            self._store(cache, data, reply, blocks, order)
        elif not tcp:
            limit = min(edns_size(query), EDNS_LIMIT)
            if len(reply) > limit:
                return ANSWER, self._fit(head, query.q, records, blocks, len(reply), limit)
        return ANSWER, reply

    def _store(self, cache: dict, data: bytes, reply: bytes, blocks: tuple[bytes, ...], order: list[int]) -> None:
        end = data.find(b"\0", 12) + 5
        start = len(reply) - sum(map(len, blocks))  # where the answer records begin
        if start != end or reply[12:end] != data[12:end]:
            return  # the hit path's key would not be exactly this question (a pointer, say)
        if len(cache) >= self.cache_limit:
            cache.clear()
        if len(blocks) < 2:
            cache[data[2:end]] = reply[2:]
            return
        by_record = [b""] * len(blocks)  # back in the records' order: every hit shuffles anew
        for block, i in zip(blocks, order):
            by_record[i] = block
        cache[data[2:end]] = (reply[2:start], tuple(by_record))

    @staticmethod
    def _fit(head: DNSHeader, question: DNSQuestion, records: list, blocks: tuple[bytes, ...], size: int, limit: int) -> bytes:
        """As many whole records as fit in a UDP answer of `limit` bytes, TC set."""
        room = limit - (size - sum(map(len, blocks)))
        count = 0
        for block in blocks:
            room -= len(block)
            if room < 0:
                break
            count += 1
        head.tc = 1
        return DNSRecord(head, questions=[question], rr=records[:count]).pack()
