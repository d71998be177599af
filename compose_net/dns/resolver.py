"""The resolver core: one query packet and the asker's view in, what to do out. No sockets.

The hot path reads the header and question by hand and looks the question up in a cache of
encoded replies; a hit costs a dict lookup and a few byte joins. Only a miss decodes the name
and asks the view. The cache is keyed by the question with its name lowercased (never by the
whole packet: EDNS cookies make every packet unique), and lives per view scope (containers that
see the same answers share it); the reply echoes the asker's ID and the asker's question bytes,
so its letter case comes back as sent. Answers with several addresses are kept as pre-encoded
record blocks and joined in a new order on every query.

Outcomes: ANSWER (reply bytes), FORWARD (the caller sends the query upstream), DROP (not a
query we may answer: too short, or a response, which would make reflection loops).
"""

from __future__ import annotations

import random
import struct
from typing import Callable, Optional

from compose_net.dns.records import View

ANSWER, FORWARD, DROP = 0, 1, 2

QTYPE_A, QTYPE_PTR, QTYPE_AAAA, QTYPE_OPT, QTYPE_ANY = 1, 12, 28, 41, 255
CLASS_IN, CLASS_ANY = 1, 255
RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP = 1, 2, 3, 4

UDP_LIMIT = 512  # without EDNS a client may expect no more
# Our own answers honour the client's EDNS size, as Docker's resolver does (it too sends no OPT
# record back), up to what one datagram slot of the server holds.
EDNS_LIMIT = 4096
CACHE_LIMIT = 1024  # entries per scope (bounds memory under random names); a full cache is dropped whole

_FWD = ("fwd",)  # cache marker: the name is not ours, forward it

# A cache entry: (byte 3 of the header and the four counts, whole answer body, blocks to shuffle
# or None). The asker's ID, flags byte 2 and question are spliced in per query.
Entry = tuple


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii", "replace")[:63]
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def _rr(rtype: int, ttl: int, rdata: bytes) -> bytes:
    # Owner name is a pointer to the question name, always at offset 12.
    return b"\xc0\x0c" + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def question_end(data: bytes) -> int:
    """Offset just past the (single) question, or -1 when the question is malformed."""
    n = len(data)
    i = 12
    try:
        while True:
            length = data[i]
            if length == 0:
                break
            if length > 63:  # compression pointers or reserved label types: not in a query
                return -1
            i += length + 1
    except IndexError:
        return -1
    end = i + 5
    return end if end <= n else -1


def error_reply(data: bytes, rcode: int, ra: bool = True) -> bytes:
    """A header-only (plus question when it parses) reply with `rcode` and the asker's ID."""
    b2 = 0x80 | (data[2] & 0x79)  # QR, keep opcode and RD
    b3 = (0x80 if ra else 0) | rcode
    qend = question_end(data) if data[4:6] == b"\x00\x01" else -1
    if qend > 0:
        return data[:2] + bytes((b2, b3)) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + data[12:qend]
    return data[:2] + bytes((b2, b3)) + b"\x00" * 8


def edns_size(data: bytes, qend: int) -> int:
    """The client's advertised UDP payload size (512 when it sent no OPT record)."""
    # A well-formed query's additional section holds just the OPT record with the root name.
    if data[10:12] != b"\x00\x00" and len(data) >= qend + 11 and data[qend] == 0:
        rtype, size = struct.unpack_from("!HH", data, qend + 1)
        if rtype == QTYPE_OPT:
            return max(UDP_LIMIT, size)
    return UDP_LIMIT


def truncate(reply: bytes, qend: int) -> bytes:
    """The header and question of `reply` with TC set: the client retries over TCP."""
    return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + reply[12:qend]


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

    def handle(self, view: View, data: bytes, tcp: bool = False, cache: Optional[dict] = None) -> tuple[int, Optional[bytes]]:
        if data.__class__ is not bytes:  # bytearray/memoryview: the cache needs hashable keys
            data = bytes(data)
        if cache is None:
            cache = self.cache_for(view)
        if not tcp:
            # Exact hit: the same header bytes 2-11 and question, byte for byte, as an earlier
            # query that parsed and was answered; the reply differs only in the ID.
            hit = cache.get(data[2 : data.find(b"\0", 12) + 5])
            if hit is not None:
                if hit.__class__ is bytes:
                    return ANSWER, data[:2] + hit
                order = list(hit[1])
                self.shuffle(order)
                return ANSWER, data[:2] + hit[0] + b"".join(order)
        if len(data) < 12 or data[2] & 0x80:
            return DROP, None
        if data[2] & 0x78:  # opcode other than QUERY
            return ANSWER, error_reply(data, RCODE_NOTIMP)
        if data[4:6] != b"\x00\x01":
            return ANSWER, error_reply(data, RCODE_FORMERR)
        qend = question_end(data)
        if qend < 0:
            return ANSWER, error_reply(data, RCODE_FORMERR)
        i = qend - 5
        # A tuple: never equal to an exact-bytes key, whatever bytes a client sends.
        key = (data[12 : i + 1].lower() + data[i + 1 : qend],)
        entry = cache.get(key)
        if entry is None:
            entry = self._miss(view, data[12:qend], i - 12)
            if len(cache) >= self.cache_limit:
                cache.clear()
            cache[key] = entry
        if entry is _FWD:
            return FORWARD, None
        tail, body, blocks = entry
        head = data[:2] + bytes((0x84 | (data[2] & 0x01),)) + tail + data[12:qend]
        if blocks is not None:
            order = list(blocks)
            self.shuffle(order)
            body = b"".join(order)
        reply = head + body
        if tcp:
            return ANSWER, reply
        if len(reply) > UDP_LIMIT:
            limit = min(edns_size(data, qend), EDNS_LIMIT)
            if len(reply) > limit:
                return ANSWER, self._fit(reply, qend, blocks, body, limit)
            # Fits only this client's EDNS size: never in the exact-bytes cache, whose key
            # does not hold the size another client may advertise.
            return ANSWER, reply
        if data.find(b"\0", 12) + 5 == qend:
            cache[data[2:qend]] = reply[2:] if blocks is None else (head[2:], blocks)
        return ANSWER, reply

    def _fit(self, reply: bytes, qend: int, blocks, body: bytes, limit: int = UDP_LIMIT) -> bytes:
        """As many whole records as fit in a UDP answer of `limit` bytes, TC set."""
        head = bytearray(reply[:qend])
        room = limit - qend
        kept = b""
        count = 0
        # Every record is the same size here (A or AAAA or one PTR), so cut on record bounds.
        size = len(blocks[0]) if blocks else len(body)
        while len(kept) + size <= room and len(kept) < len(body):
            kept += body[len(kept) : len(kept) + size]
            count += 1
        head[2] |= 0x02
        head[6:8] = count.to_bytes(2, "big")
        return bytes(head) + kept

    def _miss(self, view: View, question: bytes, name_len: int) -> Entry:
        labels = []
        i = 0
        while question[i]:
            raw = question[i + 1 : i + 1 + question[i]]
            if b"." in raw:  # a dot inside a label can never be one of our names
                return self._unknown(view)
            labels.append(raw.decode("ascii", "replace"))
            i += question[i] + 1
        qtype, qclass = struct.unpack_from("!HH", question, name_len + 1)
        if qclass not in (CLASS_IN, CLASS_ANY):
            return self._unknown(view)
        name = ".".join(labels).lower()
        ttl = view.ttl
        answer = view.lookup(name)
        if answer is not None:
            records = []
            if qtype in (QTYPE_A, QTYPE_ANY):
                records += [_rr(QTYPE_A, ttl, a.packed) for a in answer.v4]
            if qtype in (QTYPE_AAAA, QTYPE_ANY):
                records += [_rr(QTYPE_AAAA, ttl, a.packed) for a in answer.v6]
            return self._entry(records)
        if name.endswith(".in-addr.arpa") or name.endswith(".ip6.arpa"):
            target = view.reverse(name)
            if target is not None:
                records = []
                if qtype in (QTYPE_PTR, QTYPE_ANY):
                    records.append(_rr(QTYPE_PTR, ttl, _encode_name(target)))
                return self._entry(records)
        return self._unknown(view)

    @staticmethod
    def _entry(records: list[bytes]) -> Entry:
        tail = bytes((0x80,)) + struct.pack("!HHHH", 1, len(records), 0, 0)
        return (tail, b"".join(records), tuple(records) if len(records) > 1 else None)

    @staticmethod
    def _unknown(view: View) -> Entry:
        if view.upstreams:
            return _FWD
        # Nowhere to forward (internal networks only): the name does not exist for this asker.
        return (bytes((0x80 | RCODE_NXDOMAIN,)) + struct.pack("!HHHH", 1, 0, 0, 0), b"", None)
