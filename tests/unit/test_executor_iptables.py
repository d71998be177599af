"""executor/iptables.py's command lines, through a stand-in iptables that records its argv."""

from __future__ import annotations

import os

import pytest

from compose_net.errors import RuntimeFailure
from compose_net.executor import iptables

FAKE = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
case "$*" in
  *" -C "*) [ -e "{present}" ] && exit 0 || exit 1;;
  *" -D "*) rm -f "{present}"; exit 0;;
  *" -I "*) touch "{present}"; exit 0;;
esac
exit 2
"""

RULE = ("-i", "cn-1", "-m", "comment", "--comment", "compose-net p: from network p_a", "-j", "ACCEPT")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    log, present = tmp_path / "log", tmp_path / "present"
    for name in ("iptables", "ip6tables"):
        path = tmp_path / name
        path.write_text(FAKE.format(log=log, present=present))
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ.get('PATH', '')}")
    return log, present


def test_insert_checks_first_then_inserts_at_the_head_and_is_idempotent(fake):
    log, present = fake
    iptables.insert("ip", "filter", "DOCKER-USER", RULE)
    iptables.insert("ip", "filter", "DOCKER-USER", RULE)
    calls = log.read_text().splitlines()
    assert calls[0] == "-w -t filter -C DOCKER-USER " + " ".join(RULE)
    assert calls[1] == "-w -t filter -I DOCKER-USER 1 " + " ".join(RULE)
    assert calls[2].startswith("-w -t filter -C ") and len(calls) == 3  # there already: not added twice


def test_delete_removes_exactly_that_rule_and_a_missing_one_is_done(fake):
    log, present = fake
    present.touch()
    iptables.delete("ip6", "filter", "DOCKER-USER", RULE)
    assert not present.exists()
    assert "-w -t filter -D DOCKER-USER " + " ".join(RULE) in log.read_text().splitlines()
    iptables.delete("ip6", "filter", "DOCKER-USER", RULE)  # gone: no error


def test_unknown_family_and_missing_tool_are_runtime_failures(monkeypatch, tmp_path):
    with pytest.raises(RuntimeFailure):
        iptables.insert("inet", "filter", "FORWARD", RULE)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(iptables.shutil, "which", lambda *a, **k: None)
    with pytest.raises(RuntimeFailure, match="apt-get install iptables"):
        iptables.insert("ip", "filter", "FORWARD", RULE)
