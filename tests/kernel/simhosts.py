"""Simulated hosts for overlay tests and bench/overlay.py: each host is a network namespace and
a mount namespace with its own /run, /etc/netns and /sys (what a separate machine has), held by a
`sleep` process; commands run inside it through `nsenter -t PID -n -m`. The hosts are joined by
an underlay bridge made in the real host; etcd (the Debian binary) listens only on the first
host's underlay address. Nothing here touches the machine's own interfaces or routes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

ETCD = shutil.which("etcd")
UNDERLAY = "198.18.77"  # benchmarking range (RFC 2544): never the machine's own
ETCD_PORT = 23790
ROOT = Path(__file__).resolve().parents[2]
SETUP = ("mount -t tmpfs tmpfs /run && mkdir -p /run/netns && mount -t tmpfs tmpfs /etc/netns && "
         "mount -t sysfs sysfs /sys && ip link set lo up && echo ready && exec sleep infinity")


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class SimHost:
    def __init__(self, tag: str, index: int, bridge: str):
        self.address = f"{UNDERLAY}.{index}"
        self.proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", SETUP],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid
        outer = self.outer = f"u{tag}{index}"
        _sh("ip", "link", "add", outer, "type", "veth", "peer", "name", f"v{tag}{index}")
        _sh("ip", "link", "set", f"v{tag}{index}", "netns", str(self.pid))
        _sh("ip", "link", "set", outer, "master", bridge, "up")
        self.run("ip", "link", "set", f"v{tag}{index}", "name", "ul0")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", "ul0")
        self.run("ip", "link", "set", "ul0", "up")

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", *args]

    def run(self, *args: str, check: bool = True, env: Optional[dict] = None, timeout: float = 60):
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} on {self.address} exited {proc.returncode}: "
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def popen(self, *args: str, env: Optional[dict] = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env={**os.environ, **(env or {})}, **kw)

    def compose_net(self, project: str, path: Path, env: dict, *args: str, check: bool = True):
        return self.run(sys.executable, "-m", "compose_net", "-p", project, "-f", str(path), *args,
                        env=env, check=check)

    def snapshot(self) -> dict:
        """What a host's kernel holds that compose-net could leave behind."""
        links = sorted(line.split(":", 2)[1].strip().split("@")[0]
                       for line in self.run("ip", "-o", "link").stdout.splitlines())
        return {"links": links, "netns": self.run("ls", "/run/netns").stdout.split(),
                "etc": self.run("ls", "/etc/netns").stdout.split(),
                "nft": self.run("nft", "list", "tables").stdout.split("\n"),
                "fdb": self.run("bridge", "fdb", "show").stdout.splitlines(),
                "routes": self.run("ip", "route").stdout.splitlines()}

    def stop(self) -> None:
        # every process left in this host's mount namespace was started by the test (the
        # compose-net runs and their DNS servers), and so was every one in its containers'
        # network namespaces (`ip netns exec` gives its command a mount namespace of its own):
        # end them by pid
        mine = {os.readlink(f"/proc/{self.pid}/ns/mnt")}
        listed = self.run("sh", "-c", 'for f in /run/netns/*; do [ -e "$f" ] && stat -L -c %i "$f"; done',
                          check=False).stdout.split()
        mine |= {f"net:[{inode}]" for inode in listed}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.pid:
                try:
                    if {os.readlink(f"/proc/{entry}/ns/mnt"), os.readlink(f"/proc/{entry}/ns/net")} & mine:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        # the namespace's links go with it asynchronously: the outer end now, so nothing is left
        _sh("ip", "link", "del", self.outer, check=False)


class SimCluster:
    """N simulated hosts on one underlay bridge, etcd on the first one. A context manager:
    everything it made is gone afterwards, also when the body failed."""

    def __init__(self, count: int):
        self.count = count
        self.tag = uuid.uuid4().hex[:5]
        self.bridge = f"ub{self.tag}"
        self.hosts: list[SimHost] = []
        self.etcd: Optional[subprocess.Popen] = None
        self.data = ""

    @property
    def url(self) -> str:
        """What etcdctl takes."""
        return f"http://{self.hosts[0].address}:{ETCD_PORT}"

    @property
    def store(self) -> str:
        """What COMPOSE_NET_CLUSTER takes."""
        return f"etcd://{self.hosts[0].address}:{ETCD_PORT}"

    def env(self, **extra: str) -> dict:
        return {"COMPOSE_NET_CLUSTER": self.store, "PYTHONPATH": str(ROOT), **extra}

    def __enter__(self) -> "SimCluster":
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        _sh("ip", "link", "set", self.bridge, "up")
        self.data = tempfile.mkdtemp(prefix="cn-etcd-")
        try:
            self.hosts = [SimHost(self.tag, i, self.bridge) for i in range(1, self.count + 1)]
            self.start_etcd()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start_etcd(self) -> None:
        a = self.hosts[0]
        peer = f"http://{a.address}:{ETCD_PORT + 1}"
        self.etcd = a.popen(ETCD, "--name", "c", "--data-dir", self.data + "/d",
                            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                            "--initial-cluster", f"c={peer}",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while a.run("etcdctl", "--endpoints", self.url, "endpoint", "health", check=False).returncode != 0:
            assert time.monotonic() < deadline and self.etcd.poll() is None, "etcd did not start"
            time.sleep(0.2)

    def stop_etcd(self) -> None:
        if self.etcd is not None and self.etcd.poll() is None:
            os.kill(self.etcd.pid, signal.SIGTERM)
            self.etcd.wait(10)
        self.etcd = None

    def keys(self) -> list[str]:
        out = self.hosts[0].run("etcdctl", "--endpoints", self.url, "get", "--prefix", "--keys-only",
                                "/compose-net/").stdout
        return [k for k in out.split() if k]

    def __exit__(self, *exc) -> None:
        self.stop_etcd()
        for h in self.hosts:
            h.stop()
        _sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.data, ignore_errors=True)


def until(check, seconds: float, step: float = 0.3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
