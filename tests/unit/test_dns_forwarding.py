"""Forwarding order, sans-I/O: which upstream is asked next and what its answer means (Docker's
embedded resolver: the next upstream after a timeout, SERVFAIL or REFUSED; at most three)."""

from __future__ import annotations

import ipaddress

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord, EDNS0, EDNSOption

from compose_net.dns.forwarding import IGNORE, NEXT, RELAY, Exchange
from compose_net.dns.records import MAX_UPSTREAMS
from test_dns_records import build
from compose_net.dns.resolver import edns_size
from test_dns_records import sample_summary

UP_A, UP_B, UP_C = (ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3"))


def client_query(name="Example.ORG", qid=0x1234, edns=None):
    q = DNSRecord.question(name)
    q.header.id = qid
    if edns:
        q.add_ar(EDNS0(udp_len=edns, opts=[EDNSOption(10, b"cookie!!")]))
    return DNSRecord.parse(q.pack())  # as the resolver hands it over


def upstream_answer(packet: bytes, rcode=RCODE.NOERROR, addresses=("198.51.100.7",), **header) -> bytes:
    """What an upstream sends back for `packet` (the bytes the exchange gave us to send)."""
    q = DNSRecord.parse(packet)
    r = q.reply()
    r.header.rcode = rcode
    for k, v in header.items():
        setattr(r.header, k, v)
    if rcode == RCODE.NOERROR:
        for a in addresses:
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(a), ttl=60))
    return bytes(r.pack())


def exchange(upstreams=(UP_A, UP_B), deadline=2.0, tcp=False, **kw):
    """An exchange for a client's UDP query (limit: its EDNS size, as the server passes it)."""
    ids = iter(range(100, 200))
    query = client_query(**kw)
    limit = None if tcp else edns_size(query)
    return Exchange(query, upstreams, deadline, limit, random_id=lambda bits: next(ids))


@pytest.mark.parametrize("failure", [RCODE.SERVFAIL, RCODE.REFUSED])
def test_servfail_or_refused_moves_on_to_the_next_upstream(failure):
    ex = exchange()
    upstream, packet, _ = ex.next(0.0)
    assert upstream == UP_A
    assert ex.judge(upstream_answer(packet, failure)) == (NEXT, None)
    upstream, packet, _ = ex.next(0.1)
    assert upstream == UP_B
    verdict, reply = ex.judge(upstream_answer(packet, addresses=("198.51.100.8",)))
    assert verdict == RELAY
    r = DNSRecord.parse(reply)
    assert r.header.id == 0x1234 and [str(rr.rdata) for rr in r.rr] == ["198.51.100.8"]
    assert str(r.q.qname) == "Example.ORG."


def test_a_timeout_moves_on_and_every_attempt_gets_a_share_of_what_is_left():
    ex = exchange(upstreams=(UP_A, UP_B, UP_C), deadline=3.0)
    assert ex.next(0.0)[::2] == (UP_A, 1.0)
    assert ex.upstream == UP_A
    # A is silent: the caller's timer fires at 1.0 and it asks the next one
    _, packet, _ = ex.next(1.0)
    assert ex.upstream == UP_B
    # B fails at once: C gets all that is left
    assert ex.judge(upstream_answer(packet, RCODE.SERVFAIL))[0] == NEXT
    assert ex.next(1.2)[::2] == (UP_C, 3.0)
    assert ex.next(3.0) is None


def test_other_answers_go_to_the_client_nxdomain_included():
    ex = exchange()
    _, packet, _ = ex.next(0.0)
    verdict, reply = ex.judge(upstream_answer(packet, RCODE.NXDOMAIN))
    assert verdict == RELAY and DNSRecord.parse(reply).header.rcode == RCODE.NXDOMAIN
    assert ex.next(0.1)[0] == UP_B  # (not asked: the caller stops at RELAY)


def test_when_every_upstream_failed_the_client_gets_servfail():
    ex = exchange()
    for _ in range(2):
        _, packet, _ = ex.next(0.0)
        assert ex.judge(upstream_answer(packet, RCODE.SERVFAIL))[0] == NEXT
    assert ex.next(0.0) is None
    r = DNSRecord.parse(ex.failure())
    assert r.header.rcode == RCODE.SERVFAIL and r.header.id == 0x1234 and r.header.qr == 1
    assert str(r.q.qname) == "Example.ORG."


def test_the_time_up_ends_the_walk_even_with_upstreams_left():
    ex = exchange(deadline=2.0)
    ex.next(0.0)
    assert ex.next(2.5) is None


def test_what_is_not_the_answer_to_our_question_is_ignored():
    ex = exchange()
    _, packet, _ = ex.next(0.0)
    good = upstream_answer(packet)
    wrong_id = bytearray(good)
    wrong_id[0] ^= 0xFF
    assert ex.judge(bytes(wrong_id)) == (IGNORE, None)
    assert ex.judge(packet) == (IGNORE, None)  # a query, not a response
    other = DNSRecord.question("elsewhere.example")
    other.header.id = DNSRecord.parse(packet).header.id
    assert ex.judge(upstream_answer(other.pack())) == (IGNORE, None)
    assert ex.judge(b"\x00\x01garbage") == (IGNORE, None)
    assert ex.judge(b"") == (IGNORE, None)
    # another letter case of our question is our question (0x20 upstreams)
    upper = DNSRecord.parse(packet)
    upper.q.qname = "EXAMPLE.org"
    assert ex.judge(upstream_answer(upper.pack()))[0] == RELAY


def test_an_answer_from_an_earlier_attempt_no_longer_counts():
    ex = exchange()
    _, first, _ = ex.next(0.0)
    ex.next(1.0)  # A timed out; B asked with a new ID
    assert ex.judge(upstream_answer(first)) == (IGNORE, None)


def test_the_upstream_gets_the_clients_question_and_edns_with_a_fresh_id():
    ex = exchange(edns=1232)
    _, packet, _ = ex.next(0.0)
    sent = DNSRecord.parse(packet)
    assert sent.header.id == 100 and sent.header.rd == 1 and sent.header.qr == 0
    assert str(sent.q.qname) == "Example.ORG." and sent.q.qtype == QTYPE.A
    assert sent.ar[0].rtype == QTYPE.OPT and sent.ar[0].rclass == 1232
    assert ex.query.header.id == 0x1234  # the client's query is left as it came
    assert DNSRecord.parse(ex.next(1.0)[1]).header.id == 101


def test_an_answer_larger_than_the_clients_udp_size_is_cut_to_tc():
    many = tuple(f"198.51.100.{i}" for i in range(1, 61))
    ex = exchange()
    _, packet, _ = ex.next(0.0)
    verdict, reply = ex.judge(upstream_answer(packet, addresses=many))
    r = DNSRecord.parse(reply)
    assert verdict == RELAY and r.header.tc == 1 and r.rr == [] and r.header.id == 0x1234
    assert str(r.q.qname) == "Example.ORG." and len(reply) <= 512
    ex = exchange(edns=4096)
    _, packet, _ = ex.next(0.0)
    assert len(DNSRecord.parse(ex.judge(upstream_answer(packet, addresses=many))[1]).rr) == 60
    ex = exchange(tcp=True)  # over TCP any size goes
    _, packet, _ = ex.next(0.0)
    assert len(DNSRecord.parse(ex.judge(upstream_answer(packet, addresses=many))[1]).rr) == 60


def test_the_upstreams_answer_is_relayed_as_it_came_but_for_the_id():
    ex = exchange()
    _, packet, _ = ex.next(0.0)
    answer = upstream_answer(packet)
    assert ex.judge(answer)[1] == b"\x12\x34" + answer[2:]


def test_no_upstreams_means_servfail_at_once():
    ex = exchange(upstreams=())
    assert ex.next(0.0) is None
    assert DNSRecord.parse(ex.failure()).header.rcode == RCODE.SERVFAIL


def test_only_the_first_three_upstreams_are_kept_and_the_rest_named():
    summary = sample_summary()
    summary["host_nameservers"] = ["10.0.0.53", "10.0.0.54", "10.0.0.55", "10.0.0.56"]
    summary["containers"][8]["dns"] = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]
    records = build(summary)
    assert MAX_UPSTREAMS == 3
    assert [str(a) for a in records.views["ns-web"].upstreams] == ["10.0.0.53", "10.0.0.54", "10.0.0.55"]
    assert [str(a) for a in records.views["ns-six1"].upstreams] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert records.views["ns-secret"].upstreams == ()
    assert any("p-six-1" in w and "192.0.2.4, 192.0.2.5" in w for w in records.warnings)
    assert any("p-web-1" in w and "10.0.0.56" in w for w in records.warnings)
    assert not build(sample_summary()).warnings


def test_a_name_dnslib_reads_but_cannot_write_is_servfail_without_asking_anyone():
    q = DNSRecord.question("x")
    q.header.id = 0x1234
    raw = bytearray(q.pack())
    label = b"\x3f" + b"a" * 63
    raw[12:15] = label * 5 + b"\x00"  # 319 characters: more than a name may hold (253)
    query = DNSRecord.parse(bytes(raw))
    ex = Exchange(query, (UP_A, UP_B), 2.0, 512)
    assert ex.next(0.0) is None
    r = DNSRecord.parse(ex.failure())
    assert r.header.rcode == RCODE.SERVFAIL and r.header.id == 0x1234 and r.questions == []
