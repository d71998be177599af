"""The journal and the state directory, in a temporary root (no root privileges needed)."""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time

import pytest

from compose_net import state
from compose_net.summary import Summary
from compose_net.errors import StateError
from compose_net.plan import ops as O


@pytest.fixture(autouse=True)
def state_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSE_NET_STATE_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


OPS = [
    O.NetnsCreate("container:p-a-1", "p-a-1"),
    O.VethCreate("container:p-a-1", "veth1", "eth0", "p-a-1", 42, master="br1", mtu=1400, peer_mac="02:42:0a:00:00:02"),
    O.AddrAdd("container:p-a-1", "p-a-1", "eth0", ipaddress.ip_interface("10.0.0.2/24")),
    O.RouteAdd("container:p-a-1", "p-a-1", ipaddress.ip_network("0.0.0.0/0"), "eth0", ipaddress.ip_address("10.0.0.1")),
    O.FileWrite("state", "/run/compose-net/p/project.json", '{"a": 1}', 0o600, note="why"),
    O.NftApply("firewall", "inet", "cn-p", {"nftables": []}, rules=(("replies", "accepted"),)),
]


def test_ops_round_trip_through_the_journal(state_root):
    journal = state.Journal("p")
    journal.record(OPS[:2])
    journal.record(OPS[2:])
    read = state.Journal("p").read()
    assert list(read.ops) == OPS and not read.complete
    journal.mark_complete()
    assert state.Journal("p").read().complete
    journal.close()
    assert oct(os.stat(state_root / "p").st_mode & 0o777) == "0o700"


def test_new_ops_after_complete_make_it_unfinished_again():
    journal = state.Journal("p")
    journal.record(OPS[:1])
    journal.mark_complete()
    journal.record(OPS[1:2])
    assert not journal.read().complete
    journal.mark_complete()
    journal.mark_down()  # a `down` began: no longer a whole project, same ops to undo
    assert journal.read() == state.JournalState(tuple(OPS[:2]), False)
    journal.close()


def test_a_torn_last_line_is_ignored_but_corruption_elsewhere_is_an_error(state_root):
    journal = state.Journal("p")
    journal.record(OPS[:2])
    journal.close()
    with open(journal.path, "a") as fh:
        fh.write('{"ops": [{"op": "netns_cr')  # the crash hit the write itself
    assert list(journal.read().ops) == OPS[:2]
    journal.path.write_text('{"ops": [\n' + json.dumps({"ops": [OPS[0].to_json()]}) + "\n")
    with pytest.raises(StateError):
        journal.read()


def test_rewrite_replaces_atomically_and_discard_removes_the_directory(state_root):
    journal = state.Journal("p")
    journal.record(OPS)
    journal.rewrite(OPS[:1], complete=True)
    read = journal.read()
    assert list(read.ops) == OPS[:1] and read.complete
    journal.rewrite([], complete=False)
    assert journal.read() == state.JournalState((), False)
    journal.discard()
    assert not (state_root / "p").exists()


def test_list_projects_and_read_summary(state_root):
    assert state.list_projects() == []
    for name in ("b", "a"):
        j = state.Journal(name)
        j.record(OPS[:1])
        j.close()
    (state_root / "stray").mkdir()  # no journal: not a project
    assert state.list_projects() == ["a", "b"]
    assert state.read_summary("a") is None
    state.summary_path("a").write_text('{"version": 1, "project": "a"}')
    assert state.read_summary("a") == Summary("a")  # version 1 reads as it is
    state.summary_path("b").write_text("{not json")
    with pytest.raises(StateError):
        state.read_summary("b")
    state.summary_path("b").write_text('{"version": 99, "project": "b"}')
    with pytest.raises(StateError, match="version 99 is newer"):
        state.read_summary("b")


def test_host_lock_serializes_holders(state_root):
    order = []

    def second():
        with state.host_lock():
            order.append("second")

    with state.host_lock():
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]
    assert state.lock_path() == state_root.with_name(state_root.name + ".lock")
    assert state.lock_path().exists() and not (state_root / ".lock").exists()


def test_a_journal_of_the_old_format_with_the_ruleset_as_json_text_is_read(state_root):
    """Journals outlive upgrades: an `nft_apply` op journaled with its document as a JSON string
    (before issue 7) reads as today's op, so `down` can remove that project's table."""
    document = {"nftables": [{"add": {"table": {"family": "inet", "name": "cn-p"}}}]}
    old = {"op": "nft_apply", "unit": "firewall", "family": "inet", "table": "cn-p",
           "ruleset": json.dumps(document, sort_keys=True)}
    (state_root / "p").mkdir(parents=True)
    (state_root / "p" / "journal").write_text(json.dumps({"ops": [old]}) + "\n" + '{"complete": true}\n')
    (op,) = state.Journal("p").read().ops
    assert op == O.NftApply("firewall", "inet", "cn-p", document) and op.rules == ()
    assert O.teardown([op]) == (O.NftDelete("firewall", "inet", "cn-p"),)
    # and what is written now keeps the document as an object, with the rules in words
    journal = state.Journal("p")
    journal.rewrite(OPS[5:])
    line = json.loads((state_root / "p" / "journal").read_text().splitlines()[0])
    assert line["ops"][0]["ruleset"] == {"nftables": []}
    assert line["ops"][0]["rules"] == [["replies", "accepted"]]
    assert state.Journal("p").read().ops[0].rules == (("replies", "accepted"),)


def test_an_old_ruleset_that_is_not_json_is_a_clear_error(state_root):
    old = {"op": "nft_apply", "unit": "firewall", "family": "inet", "table": "cn-p", "ruleset": "{not json"}
    (state_root / "p").mkdir(parents=True)
    (state_root / "p" / "journal").write_text(json.dumps({"ops": [old]}) + "\n")
    with pytest.raises(StateError, match="journal:1: unreadable op"):
        state.Journal("p").read()
