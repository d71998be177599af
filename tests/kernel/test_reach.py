"""`reach --verify` over a project with policy on some services and not others: every cell of the
matrix tried live both ways (open ones connect, closed ones do not), TCP and UDP, the host and a
throwaway `outside` namespace included; and the same command catching a kernel that disagrees
(the project's table gone)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from compose_net.executor import nft
from test_ports import Up, cli

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "policy" / "compose.yml").read_text()
# the example with its own port and subnets, and UDP in a rule
PROJECT = EXAMPLE.replace("name: policyshop\n", "").replace('"18480:80"', '"18481:80"').replace(
    '["6379/tcp"]', '["6379/tcp", "6379/udp"]')


@pytest.fixture(scope="module")
def shop(kernel_lock, tmp_path_factory):
    project = Up(tmp_path_factory.mktemp("reach"), PROJECT, uuid.uuid4().hex[:7])
    try:
        project.start({})
        yield project
    finally:
        project.stop()


def verify(up: Up, *extra: str):
    proc = cli("reach", "--verify", "--json", *extra, project=up.project, file=up.file, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_every_cell_is_proved_both_ways(shop):
    status, report = verify(shop)
    bad = [p for p in report["probes"] if not p["agrees"]]
    assert status == 0 and not bad, bad
    assert report["sampled"] is None and report["skipped"] == []
    probes = report["probes"]
    nodes = {p["from"] for p in probes} | {p["to"] for p in probes}
    assert {"host", "outside"} <= nodes and len(nodes) == 9
    # both ways: some of every kind open and closed
    for route in ("direct", "published"):
        for proto in ("tcp", "udp"):
            kinds = {p["expected"] for p in probes if p["route"] == route and p["protocol"] == proto}
            assert kinds == {True, False} or (route, proto) == ("published", "udp"), (route, proto, kinds)
    # the policy's cells, by name
    def cell(src, dst, port, proto="tcp"):
        [p] = [p for p in probes if p["from"].endswith(src) and p["to"].endswith(dst) and p["port"] == port
               and p["protocol"] == proto and p["route"] == "direct"]
        return p["expected"], p["got"]

    assert cell("api-1", "db-1", 5432) == (True, "answer:" + shop.project + "-db-1")
    assert cell("queue-1", "db-1", 5432)[0] is False
    assert cell("worker-1", "queue-1", 6379, "udp")[0] is True
    assert cell("worker-1", "api-1", 3000)[0] is False  # worker's egress names no api
    assert report["seconds"] < 5


def test_a_kernel_that_disagrees_is_caught(shop):
    table = f"cn-{shop.project}"
    nft.delete_table("inet", table)
    try:
        status, report = verify(shop, "queue", "db")
        bad = [p for p in report["probes"] if not p["agrees"]]
        assert status == 1
        # without the table, what the policy closed is open
        assert any(p["from"].endswith("queue-1") and p["port"] == 5432 for p in bad)
        # and from db: api's ingress names no db
        status, report = verify(shop, "db", "api")
        assert status == 1 and not all(p["agrees"] for p in report["probes"])
        text = cli("reach", "--verify", "db", project=shop.project, file=shop.file, check=False)
        assert text.returncode == 1 and "DISAGREES" in text.stdout
    finally:
        cli("up", "--quiet", project=shop.project, file=shop.file)
    assert verify(shop, "queue", "db")[0] == 0 and verify(shop, "db")[0] == 0


def test_reach_of_a_project_that_is_not_up_says_so(tmp_path):
    (tmp_path / "compose.yml").write_text("services: {a: {image: x}}\n")
    proc = cli("reach", "--verify", project="t" + uuid.uuid4().hex[:8], file=tmp_path / "compose.yml", check=False)
    assert proc.returncode == 1 and "is not up" in proc.stderr
