"""Wire-level answers of the resolver core, without sockets; dnslib decodes every reply."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from dnslib import CLASS, DNSLabel, DNSRecord, EDNS0, EDNSOption, QTYPE, RCODE
from hypothesis import given, settings, strategies as st

from compose_net.dns import records
from compose_net.dns.resolver import ANSWER, DROP, FORWARD, Resolver, edns_size, truncated
from compose_net.summary import from_data


def build(data):
    """Records from a summary written as JSON data (the form `up` records)."""
    return records.build(from_data(data))

from test_dns_records import _ctr, sample_summary


@pytest.fixture
def views():
    return build(sample_summary()).views


@pytest.fixture
def resolver():
    return Resolver()


def ask(resolver, view, name, qtype="A", tcp=False, qid=None, edns=False):
    q = DNSRecord.question(name, qtype)
    q.header.id = qid if qid is not None else random.randrange(65536)
    if edns:
        q.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(10, random.randbytes(8))]))
    action, reply = resolver.handle(view, q.pack(), tcp)
    assert action == ANSWER, (name, qtype, action)
    r = DNSRecord.parse(reply)
    assert r.header.id == q.header.id
    assert r.header.qr == 1
    assert str(r.q.qname) == str(q.q.qname)  # the asker's letter case comes back as sent
    return r


def rdata(r):
    return [str(rr.rdata) for rr in r.rr]


def forwards(resolver, view, name, qtype="A"):
    """Whether the resolver hands the query to the caller to forward, parsed by dnslib."""
    q = DNSRecord.question(name, qtype)
    action, query = resolver.handle(view, q.pack())
    if action != FORWARD:
        return False
    assert query.header.id == q.header.id and str(query.q.qname) == str(q.q.qname)
    return True


def test_a_answer_echoes_id_and_case(resolver, views):
    r = ask(resolver, views["ns-web"], "DaTaBaSe.", qid=0x1234)
    assert r.header.rcode == RCODE.NOERROR and r.header.aa == 1
    assert rdata(r) == ["172.21.0.10"]
    assert r.rr[0].ttl == 600 and r.rr[0].rtype == QTYPE.A
    assert str(r.rr[0].rname) == "DaTaBaSe."


def test_scoping_holds_with_the_cache_on(resolver, views):
    for _ in range(3):  # the second and third rounds are cache hits
        assert rdata(ask(resolver, views["ns-web"], "db")) == ["172.21.0.10"]
        assert rdata(ask(resolver, views["ns-secret"], "db")) == ["172.22.0.2"]
        assert rdata(ask(resolver, views["ns-db"], "dbpriv")) == ["172.22.0.2"]
        assert ask(resolver, views["ns-secret"], "dbback").header.rcode == RCODE.NXDOMAIN
        assert rdata(ask(resolver, views["ns-tool"], "web")) == ["172.21.0.2"]
        assert rdata(ask(resolver, views["ns-proxy"], "web")) == ["172.20.0.2"]
        # web's link alias is not tool's name: it goes upstream like any unknown name
        assert forwards(resolver, views["ns-tool"], "database")
        assert rdata(ask(resolver, views["ns-web"], "database")) == ["172.21.0.10"]


def test_unknown_names_forward_except_from_internal_only_containers(resolver, views):
    assert forwards(resolver, views["ns-web"], "example.com")
    assert forwards(resolver, views["ns-web"], "example.com")  # asked again: still forwarded
    assert forwards(resolver, views["ns-tool"], "database")
    r = ask(resolver, views["ns-secret"], "example.com")
    assert r.header.rcode == RCODE.NXDOMAIN and not r.rr


def test_replicas_all_addresses_shuffled_per_query_with_cache(resolver, views):
    orders = set()
    for i in range(60):
        r = ask(resolver, views["ns-web"], "API" if i % 2 else "api")
        got = rdata(r)
        assert sorted(got) == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]
        orders.add(tuple(got))
    assert len(orders) >= 3  # 6 orders possible; 60 draws give fewer than 3 with p < 1e-15
    assert rdata(ask(resolver, views["ns-web"], "p-api-2")) == ["172.21.0.4"]


def test_shuffle_applies_to_cached_blocks():
    views = build(sample_summary()).views
    resolver = Resolver(shuffle=lambda order: order.reverse())
    first = rdata(ask(resolver, views["ns-web"], "api"))
    second = rdata(ask(resolver, views["ns-web"], "api"))
    assert first == second == ["172.21.0.5", "172.21.0.4", "172.21.0.3"]


def test_known_name_without_records_of_the_type_is_empty_noerror(resolver, views):
    for qtype in ("AAAA", "MX", "TXT"):
        r = ask(resolver, views["ns-web"], "db", qtype)
        assert r.header.rcode == RCODE.NOERROR and r.rr == []


def test_aaaa_on_ipv6_network(resolver, views):
    r = ask(resolver, views["ns-six2"], "p-six-1", "AAAA")
    assert rdata(r) == ["fd00:6::2"]
    r = ask(resolver, views["ns-six2"], "six", "AAAA")
    assert sorted(rdata(r)) == ["fd00:6::2", "fd00:6::3"]
    assert sorted(rdata(ask(resolver, views["ns-six2"], "six", "A"))) == ["172.23.0.2", "172.23.0.3"]


def test_ptr(resolver, views):
    r = ask(resolver, views["ns-web"], "10.0.21.172.in-addr.arpa", "PTR")
    assert rdata(r) == ["p-db-1.p_back."]
    r = ask(resolver, views["ns-six1"], ipaddress.ip_address("fd00:6::3").reverse_pointer, "PTR")
    assert rdata(r) == ["p-six-2.p_v6net."]
    # an address on a network the asker is not on is not ours to answer
    assert forwards(resolver, views["ns-proxy"], "10.0.21.172.in-addr.arpa", "PTR")


def test_edns_queries_hit_the_cache_despite_unique_cookies(resolver, views):
    assert rdata(ask(resolver, views["ns-web"], "db", edns=True)) == ["172.21.0.10"]
    entries = len(resolver.cache_for(views["ns-web"]))
    for _ in range(5):
        assert rdata(ask(resolver, views["ns-web"], "db", edns=True)) == ["172.21.0.10"]
    assert len(resolver.cache_for(views["ns-web"])) == entries


def test_large_answer_truncated_over_udp_whole_over_tcp():
    summary = sample_summary()
    summary["containers"] += [_ctr(f"p-many-{i}", "many", f"ns-many{i}", [("p_back", f"172.21.1.{i}", [])])
                              for i in range(1, 41)]
    views = build(summary).views
    resolver = Resolver()
    udp = ask(resolver, views["ns-web"], "many")
    assert udp.header.tc == 1 and 0 < len(udp.rr) < 40
    assert len(udp.pack()) <= 512
    tcp = ask(resolver, views["ns-web"], "many", tcp=True)
    assert tcp.header.tc == 0 and len(tcp.rr) == 40


def test_not_a_query_or_malformed(resolver, views):
    web = views["ns-web"]
    good = DNSRecord.question("db").pack()
    assert resolver.handle(web, b"") == (DROP, None)
    assert resolver.handle(web, good[:11]) == (DROP, None)
    response = bytearray(good)
    response[2] |= 0x80
    assert resolver.handle(web, bytes(response)) == (DROP, None)  # never answer a response

    def rcode_of(packet):
        action, reply = resolver.handle(web, packet)
        assert action == ANSWER
        r = DNSRecord.parse(reply)
        assert r.header.id == struct.unpack("!H", packet[:2])[0] and r.header.qr == 1
        return r.header.rcode

    two = bytearray(good)
    two[5] = 2
    assert rcode_of(bytes(two)) == RCODE.FORMERR
    assert rcode_of(good[:12]) == RCODE.FORMERR  # header says one question, none follows
    assert rcode_of(good[:-2]) == RCODE.FORMERR  # question cut short
    pointer = good[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    assert rcode_of(pointer) == RCODE.FORMERR
    status = bytearray(good)
    status[2] = (2 << 3)  # opcode STATUS
    assert rcode_of(bytes(status)) == RCODE.NOTIMP


def test_truncated_and_edns_size_helpers():
    q = DNSRecord.question("db")
    assert edns_size(DNSRecord.parse(q.pack())) == 512
    q.add_ar(EDNS0(udp_len=4096))
    assert edns_size(DNSRecord.parse(q.pack())) == 4096
    q.ar[0].rclass = 100  # below 512 means 512 (RFC 6891 6.2.5)
    assert edns_size(DNSRecord.parse(q.pack())) == 512
    big = DNSRecord.question("db")
    big.header.qr = 1
    for i in range(100):
        big.add_answer(*DNSRecord.question("db").replyZone(f"db 60 A 10.0.0.{i}").rr)
    cut = DNSRecord.parse(truncated(DNSRecord.parse(big.pack()), 0x4242))
    assert cut.header.tc == 1 and cut.rr == [] and str(cut.q.qname) == "db." and cut.header.id == 0x4242


# --- fuzz: the core never raises and stays right afterwards ---------------------------------


def _check_reply(packet, action, reply):
    assert action in (ANSWER, FORWARD, DROP)
    if action == ANSWER:
        assert reply[:2] == packet[:2]
        r = DNSRecord.parse(reply)  # what we send is always well-formed
        assert r.header.qr == 1
    elif action == FORWARD:
        assert isinstance(reply, DNSRecord) and reply.header.qr == 0
    else:
        assert reply is None
    if len(packet) >= 3 and packet[2] & 0x80:
        assert action == DROP


FUZZ_RESOLVER = Resolver(cache_limit=64)  # a small cache so fuzzing also exercises eviction
FUZZ_VIEWS = build(sample_summary()).views


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(sorted(FUZZ_VIEWS)), st.booleans())
def test_fuzz_random_packets(packet, netns, tcp):
    action, reply = FUZZ_RESOLVER.handle(FUZZ_VIEWS[netns], packet, tcp)
    _check_reply(packet, action, reply)


def test_fuzz_mutated_packets_then_still_correct():
    rng = random.Random(4)
    resolver = Resolver(cache_limit=128)
    views = build(sample_summary()).views
    names = ["db", "api", "web", "p-api-1", "example.com", "10.0.21.172.in-addr.arpa", "six", "x" * 63]
    seeds = []
    for name in names:
        for qtype in ("A", "AAAA", "PTR", "ANY", "MX"):
            q = DNSRecord.question(name, qtype)
            seeds.append(q.pack())
            q.add_ar(EDNS0(udp_len=4096))
            seeds.append(q.pack())
    netnss = sorted(views)
    for _ in range(5000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            if op == 0 and packet:
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            elif op == 1 and packet:
                del packet[rng.randrange(len(packet)):]
            elif op == 2:
                packet.insert(rng.randrange(len(packet) + 1), rng.randrange(256))
            else:
                packet += rng.randbytes(rng.randint(1, 20))
        packet = bytes(packet)
        action, reply = resolver.handle(views[rng.choice(netnss)], packet, rng.random() < 0.2)
        _check_reply(packet, action, reply)
    # the same resolver (and its caches) still answers exactly right
    assert rdata(ask(resolver, views["ns-web"], "db")) == ["172.21.0.10"]
    assert rdata(ask(resolver, views["ns-secret"], "db")) == ["172.22.0.2"]
    assert sorted(rdata(ask(resolver, views["ns-api1"], "api"))) == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]


def test_class_other_than_in_is_not_ours(resolver, views):
    q = DNSRecord.question("db", "A", "CH").pack()
    assert resolver.handle(views["ns-web"], q)[0] == FORWARD
    r = DNSRecord.parse(resolver.handle(views["ns-secret"], q)[1])
    assert r.header.rcode == RCODE.NXDOMAIN
    assert CLASS.get(r.q.qclass) == "CH"


def test_flags_mirror_each_query_on_both_cache_paths(resolver, views):
    web = views["ns-web"]
    for rd in (1, 0, 1, 0):  # first of each kind misses, the rest hit the exact-bytes cache
        q = DNSRecord.question("db")
        q.header.rd = rd
        for name in ("db", "DB"):
            q.q.qname = name
            action, reply = resolver.handle(web, bytes(q.pack()))
            r = DNSRecord.parse(reply)
            assert r.header.rd == rd and r.header.qr == 1 and r.header.aa == 1
            assert str(r.q.qname) == name + "." and rdata(r) == ["172.21.0.10"]


def test_caches_are_per_resolver_so_a_reload_starts_clean(views):
    old = Resolver()
    assert rdata(ask(old, views["ns-web"], "db")) == ["172.21.0.10"]
    summary = sample_summary()
    summary["containers"][4]["interfaces"][0]["ipv4"] = "172.21.0.99/16"
    new_views = build(summary).views
    new = Resolver()
    assert rdata(ask(new, new_views["ns-web"], "db")) == ["172.21.0.99"]


def test_configured_ttl_is_on_the_wire():
    summary = sample_summary()
    summary["dns_ttl"] = 7
    views = build(summary).views
    r = ask(Resolver(), views["ns-web"], "api")
    assert [rr.ttl for rr in r.rr] == [7, 7, 7]


def test_name_dot_network_on_the_wire_and_ptr_target_round_trips(resolver, views):
    ptr = rdata(ask(resolver, views["ns-tool"], "2.0.20.172.in-addr.arpa", "PTR"))
    assert ptr == ["p-web-1.p_front."]
    for _ in range(2):  # the second round is a cache hit
        assert rdata(ask(resolver, views["ns-tool"], ptr[0])) == ["172.20.0.2"]
        assert rdata(ask(resolver, views["ns-tool"], "web")) == ["172.21.0.2"]


def test_own_answers_honour_the_clients_edns_size_and_the_cache_keeps_them_apart():
    summary = sample_summary()
    summary["containers"] += [_ctr(f"p-many-{i}", "many", f"ns-many{i}", [("p_back", f"172.21.1.{i}", [])])
                              for i in range(1, 41)]
    views = build(summary).views
    resolver = Resolver()
    web = views["ns-web"]

    def edns_ask(size):
        q = DNSRecord.question("many")
        q.add_ar(EDNS0(udp_len=size))
        action, reply = resolver.handle(web, q.pack())
        assert action == ANSWER and len(reply) <= max(size, 512)
        r = DNSRecord.parse(reply)
        assert r.header.id == q.header.id
        return r

    orders = set()
    for _ in range(6):  # big and small clients in turn: each gets its own size, hit or miss
        big = edns_ask(1232)
        assert big.header.tc == 0 and len(big.rr) == 40
        orders.add(tuple(rdata(big)))
        small = edns_ask(512)
        assert small.header.tc == 1 and 0 < len(small.rr) < 40
        assert ask(resolver, web, "many").header.tc == 1  # no EDNS: 512 bytes
    assert len(orders) > 1  # still shuffled
    huge = edns_ask(65000)  # capped at what the server's datagram slots hold
    assert huge.header.tc == 0 and len(huge.rr) == 40


# --- the hit path never parses; the miss path is dnslib's -----------------------------------


def test_a_cached_question_is_answered_without_parsing(monkeypatch, views):
    import compose_net.dns.resolver as resolver_module

    resolver = Resolver()
    web = views["ns-web"]

    def query(name, cookie=True):
        q = DNSRecord.question(name)
        if cookie:  # a new EDNS cookie every time: the packets differ after the question
            q.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(10, random.randbytes(8))]))
        return q.pack()

    for name in ("db", "API"):
        assert resolver.handle(web, query(name))[0] == ANSWER
    assert resolver.handle(web, query("db", cookie=False))[0] == ANSWER
    parsed = []
    monkeypatch.setattr(resolver_module.DNSRecord, "parse", lambda data: parsed.append(data))
    sent = [query("db"), query("API"), query("API"), query("db", cookie=False)]
    replies = [resolver.handle(web, packet, tcp) for packet, tcp in zip(sent, (False, False, True, False))]
    monkeypatch.undo()
    assert parsed == []
    for packet, (action, reply) in zip(sent, replies):
        q, r = DNSRecord.parse(packet), DNSRecord.parse(reply)
        assert action == ANSWER and r.header.id == q.header.id and r.q.qname.label == q.q.qname.label
        assert sorted(rdata(r)) == (["172.21.0.10"] if str(q.q.qname) == "db." else ["172.21.0.3", "172.21.0.4", "172.21.0.5"])


def test_replies_are_dnslibs_encoding():
    from dnslib import RR, A, DNSHeader, DNSQuestion

    from compose_net.dns.resolver import encode

    header = DNSHeader(id=7, qr=1, aa=1, ra=1)
    question = DNSQuestion("Api.")
    records = [RR(question.qname, QTYPE.A, rdata=A(f"10.0.0.{i}"), ttl=60) for i in range(3)]
    data, blocks = encode(header, question, records)
    assert data == DNSRecord(DNSHeader(id=7, qr=1, aa=1, ra=1), questions=[question], rr=records).pack()
    assert len(blocks) == 3 and data.endswith(b"".join(blocks))
    assert all(block.startswith(b"\xc0\x0c") for block in blocks)  # owner: a pointer to the question


def test_names_dnslib_cannot_read_are_formerr_and_dotted_labels_are_not_ours(resolver, views):
    q = DNSRecord.question("db")
    raw = bytearray(q.pack())
    raw[13] = 0xFF  # "\xffb": not UTF-8, which dnslib refuses in a name
    r = DNSRecord.parse(resolver.handle(views["ns-web"], bytes(raw))[1])
    assert r.header.rcode == RCODE.FORMERR and r.header.id == q.header.id and r.questions == []
    dotted = DNSRecord.question("x")
    dotted.q.qname = DNSLabel([b"d.b"])  # one label holding a dot: never one of our names
    assert resolver.handle(views["ns-web"], dotted.pack())[0] == FORWARD
    r = DNSRecord.parse(resolver.handle(views["ns-secret"], dotted.pack())[1])
    assert r.header.rcode == RCODE.NXDOMAIN and r.q.qname.label == (b"d.b",)


def test_any_answers_both_families_and_ptr_of_other_types_is_empty(resolver, views):
    r = ask(resolver, views["ns-six2"], "p-six-1", "ANY")
    assert sorted(rdata(r)) == ["172.23.0.2", "fd00:6::2"]
    r = ask(resolver, views["ns-web"], "10.0.21.172.in-addr.arpa", "A")
    assert r.header.rcode == RCODE.NOERROR and r.rr == []


def test_an_overlong_name_gets_an_answer_without_its_question(resolver, views):
    q = DNSRecord.question("x")
    raw = bytearray(q.pack())
    raw[12:14] = (b"\x3f" + b"a" * 63) * 5  # 319 characters: dnslib reads it, cannot write it back
    assert resolver.handle(views["ns-web"], bytes(raw))[0] == FORWARD  # the server then SERVFAILs
    r = DNSRecord.parse(resolver.handle(views["ns-secret"], bytes(raw))[1])
    assert r.header.rcode == RCODE.SERVFAIL and r.header.id == q.header.id and r.questions == []
