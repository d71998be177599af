"""Atomic file writes and their removal (no root: uses a temporary directory)."""

from __future__ import annotations

import os

from compose_net.executor import files


def test_write_is_atomic_and_remove_takes_the_empty_netns_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "NETNS_ETC_DIR", str(tmp_path))
    path = tmp_path / "ctr" / "hosts"
    files.write_atomic(str(path), "127.0.0.1\tlocalhost\n")
    assert path.read_text() == "127.0.0.1\tlocalhost\n"
    assert os.listdir(tmp_path / "ctr") == ["hosts"]
    assert files.remove(str(path)) is True
    assert not (tmp_path / "ctr").exists()
    assert files.remove(str(path)) is False  # already gone counts as done


def test_remove_clears_the_temporary_file_of_a_killed_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "NETNS_ETC_DIR", str(tmp_path))
    directory = tmp_path / "ctr"
    directory.mkdir()
    (directory / ".resolv.conf.4242.tmp").write_text("nameserver 127.0.0.11\n")
    (directory / "other").write_text("not ours to remove\n")
    assert files.remove(str(directory / "resolv.conf")) is False
    assert os.listdir(directory) == ["other"]
