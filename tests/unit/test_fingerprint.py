"""The key of a reusable desired plan: anything a plan is made from changes it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from compose_net import fingerprint
from compose_net.loader import LoadOptions, inputs, load
from compose_net.probe import HostFacts, HostRoute
from compose_net.summary import Summary

OPTIONS = (("compose.yml",), None, None, (), (), ())


def test_key_is_stable_across_equal_inputs():
    facts = HostFacts(links={"b": 2, "a": 1}, netns=frozenset({"x", "y"}), projects={"p": Summary("p")})
    again = HostFacts(links={"a": 1, "b": 2}, netns=frozenset({"y", "x"}), projects={"p": Summary("p")})
    assert fingerprint.key(OPTIONS, {"A": "1"}, facts) == fingerprint.key(OPTIONS, {"A": "1"}, again)


def test_key_changes_with_every_kind_of_input():
    base = fingerprint.key(OPTIONS, {"A": "1"}, HostFacts())
    route = HostFacts(routes=(HostRoute(ipaddress.ip_network("10.9.0.0/16"), "wg0"),))
    variants = [
        fingerprint.key(OPTIONS, {"A": "2"}, HostFacts()),  # interpolation may read it
        fingerprint.key(OPTIONS, {"A": "1", "B": ""}, HostFacts()),
        fingerprint.key((("other.yml",),) + OPTIONS[1:], {"A": "1"}, HostFacts()),
        fingerprint.key(OPTIONS[:4] + (("debug",),) + OPTIONS[5:], {"A": "1"}, HostFacts()),  # a profile
        fingerprint.key(OPTIONS, {"A": "1"}, route),  # IPAM skips host routes
        fingerprint.key(OPTIONS, {"A": "1"}, HostFacts(projects={"other": Summary("other")})),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_the_loader_notes_every_path_it_looks_at(tmp_path: Path, monkeypatch):
    (tmp_path / "compose.yml").write_text("services:\n  web: {image: x, env_file: [web.env]}\n")
    (tmp_path / "web.env").write_text("A=1\n")
    monkeypatch.chdir(tmp_path)
    with inputs.recording() as paths:
        load(LoadOptions(environ={}))
    seen = set(paths)
    # read, and only asked about: an override or a .env made later changes the project
    assert {str(tmp_path / n) for n in ("compose.yml", "web.env", "compose.override.yml", ".env")} <= seen


def test_files_tell_content_absence_and_directories(tmp_path: Path):
    f, gone = tmp_path / "compose.yml", tmp_path / "compose.override.yml"
    f.write_text("services: {}\n")
    recorded = fingerprint.files([str(f), str(gone), str(tmp_path), str(f)])
    assert [d for _, d in recorded][1:] == [fingerprint.ABSENT, fingerprint.DIRECTORY] and len(recorded) == 3
    assert fingerprint.unchanged(recorded)
    f.write_text("services: {web: {image: x}}\n")
    assert not fingerprint.unchanged(recorded)
    f.write_text("services: {}\n")
    gone.write_text("services: {}\n")  # a new override file is a change as much as an edit
    assert not fingerprint.unchanged(recorded)
