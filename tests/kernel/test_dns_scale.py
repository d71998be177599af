"""One server for 100 containers: a socket pair in every namespace, every container answered,
and the process stays within its memory budget (RSS <= 20 MB)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dnslib import DNSRecord

from compose_net.dns import control
from conftest import sh
from test_dns_server import in_netns, ips, query

N = 100
RSS_LIMIT_KB = 20 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hundred_containers_answered_within_memory_budget(project_name, tmp_path):
    net = f"{project_name}_default"
    names = [f"{project_name}-{i}" for i in range(N)]
    containers = []
    made: list[str] = []
    state = tmp_path / "state"
    try:
        for i, ns in enumerate(names):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            containers.append({
                "name": f"{project_name}-svc{i}-1", "service": f"svc{i}", "index": 1, "id": os.urandom(32).hex(),
                "netns": ns, "hostname": None, "dns": [], "dns_search": [], "links": [],
                "interfaces": [{"network": net, "ifname": "eth0", "ipv4": f"10.77.{i // 200}.{i % 200 + 2}/16",
                                "ipv6": None, "aliases": [f"svc{i}", f"{project_name}-svc{i}-1"]}],
            })
        records = tmp_path / "project.json"
        records.write_text(json.dumps({"version": 1, "project": project_name, "host_nameservers": [],
                                       "networks": [{"name": net, "internal": False}], "containers": containers}))
        pid = control.start(project_name, records, state=state)
        assert json.loads((state / "dns.status").read_text())["netns"] == sorted(names)
        for i in range(0, N, 9):  # a sample of askers, each asking for another container
            j = (i * 7 + 3) % N
            assert ips(query(names[i], f"svc{j}")) == [f"10.77.{j // 200}.{j % 200 + 2}"]

        def burst():  # every name, a few rounds, from one container: fills the caches
            import socket
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.connect(("127.0.0.11", 53))
                for _ in range(3):
                    for k in range(N):
                        s.send(bytes(DNSRecord.question(f"SVC{k}", "A" if k % 2 else "AAAA").pack()))
                        s.recv(512)
        in_netns(names[0], burst)
        assert rss_kb(pid) <= RSS_LIMIT_KB
    finally:
        control.stop(project_name, state=state)
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)
