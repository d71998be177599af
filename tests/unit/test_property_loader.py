"""Property tests: whatever the input, `load` raises nothing but the project's own errors."""

import atexit
import contextlib
import json
import resource
import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compose_net.errors import ComposeNetError
from compose_net.loader import LoadOptions, load
from compose_net.loader.config_output import render

WORKDIR = Path(tempfile.mkdtemp(prefix="compose-net-prop-"))
atexit.register(shutil.rmtree, WORKDIR, True)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
name: prop
x-base: &base {image: nginx, restart: always}
services:
  web:
    <<: *base
    ports: ["8080:80", "127.0.0.1:9000-9001:9000-9001/udp", {target: 81, published: "8081"}]
    networks:
      front: {aliases: [www], ipv4_address: 172.30.0.10, priority: 2}
      back:
    depends_on: {db: {condition: service_healthy}}
    links: ["db:database"]
    extra_hosts: ["gw:host-gateway", "h=10.0.0.1"]
    environment: {A: 1, B: "${B:-two}"}
    dns: [1.1.1.1]
  db:
    image: postgres
    deploy: {replicas: 2}
    networks: [back]
  side:
    image: busybox
    network_mode: "service:web"
    profiles: [debug]
networks:
  front:
    ipam: {config: [{subnet: 172.30.0.0/24, gateway: 172.30.0.1}]}
  back:
    driver_opts: {com.docker.network.driver.mtu: 1400}
"""
KEYS = ["services", "networks", "web", "db", "image", "ports", "networks", "ipv4_address", "ipam", "config",
        "subnet", "gateway", "depends_on", "links", "network_mode", "deploy", "replicas", "scale", "external",
        "driver", "driver_opts", "aliases", "extra_hosts", "dns", "profiles", "container_name", "name", "x-a",
        "expose", "environment", "<<", "interface_name", "mac_address", "ipv6_address", "enable_ipv6",
        "extends", "include", "service", "file", "path"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-70000, 70000), st.floats(allow_nan=True),
    st.sampled_from(["8080:80", "10.0.0.1", "172.30.0.0/24", "service:web", "host", "${X}", "${Y:?no}", "${Z",
                     "fd00::1", "a:b:c", "80-81:80", "web", "db", "front", "bridge", "macvlan", "1e3", "0o17"]),
    st.text(max_size=12),
)


@contextlib.contextmanager
def memory_cap(limit: int = 4 << 30):
    """A runaway allocation becomes a MemoryError (a failing example), not the OOM killer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run(text: str) -> None:
    with memory_cap():
        _run(text)


def _run(text: str) -> None:
    path = WORKDIR / "compose.yml"
    path.write_bytes(text.encode("utf-8", errors="replace"))
    try:
        result = load(LoadOptions(files=("compose.yml",), cwd=str(WORKDIR), environ={}, project_name="prop"))
    except ComposeNetError:
        return
    # whatever loads must also render, and its YAML must load again
    again = WORKDIR / "again.yml"
    again.write_text(render(result, "yaml"))
    try:
        load(LoadOptions(files=("again.yml",), cwd=str(WORKDIR), environ={}, project_name="prop"))
    except ComposeNetError:
        pass


def test_the_seed_file_is_valid():
    (WORKDIR / "seed.yml").write_text(VALID)
    result = load(LoadOptions(files=("seed.yml",), cwd=str(WORKDIR), environ={}, project_name="prop"))
    assert len(result.project.containers) == 3


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("ab:- \n\t[]{},&*!|>'\"#%@`$?=.0123456789~<\\")), max_size=200))
def test_random_yamlish_text(text):
    run(text)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["delete", "insert", "dup", "swap", "replace"]),
                          st.integers(0, len(VALID)), st.integers(1, 30), st.text(max_size=8)), min_size=1, max_size=4))
def test_random_mutations_of_a_valid_file(mutations):
    text = VALID
    for kind, pos, length, chunk in mutations:
        pos = min(pos, len(text))
        if kind == "delete":
            text = text[:pos] + text[pos + length:]
        elif kind == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif kind == "replace":
            text = text[:pos] + chunk + text[pos + len(chunk):]
        else:
            lines = text.split("\n")
            i = pos % len(lines)
            j = (pos + length) % len(lines)
            if kind == "dup":
                lines.insert(i, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    run(text)


structures = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=5)),
    max_leaves=30,
)


@SETTINGS
@given(structures)
def test_random_nested_structures(data):
    run(yaml.safe_dump(data) if not isinstance(data, float) else json.dumps(str(data)))


@SETTINGS
@given(st.dictionaries(st.sampled_from(["web", "db", "x"]), st.dictionaries(st.sampled_from(KEYS), structures,
                                                                          max_size=4), max_size=3),
       st.dictionaries(st.sampled_from(["front", "back", "default"]),
                       st.dictionaries(st.sampled_from(KEYS), structures, max_size=3), max_size=2))
def test_random_services_and_networks(services, networks):
    run(yaml.safe_dump({"services": services, "networks": networks}))


WORDS = st.sampled_from(["web", "db", "front", "back", "default", "10.0.0.5", "10.0.0.0/24", "fd00::/64", "fd00::5",
                         "8080:80", "80", "1-2:1-2", "0:0", "65536", "x:y", "::1", "172.30.0.1", "host", "none",
                         "service:web", "service:db", "container:c", "h:1.2.3.4", "eth0", "", "-1", "3"])
TEXT = st.one_of(WORDS, st.text(max_size=6), st.floats(), st.integers())


@SETTINGS
@given(st.dictionaries(st.sampled_from(["web", "db", "api"]), st.fixed_dictionaries({}, optional={
    "ports": st.lists(st.one_of(TEXT, st.integers(-5, 70000)), max_size=3),
    "networks": st.one_of(st.lists(WORDS, max_size=3, unique=True), st.dictionaries(
        st.sampled_from(["front", "back", "default", "other"]),
        st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "ipv4_address": TEXT, "ipv6_address": TEXT, "aliases": st.lists(WORDS, max_size=2, unique=True),
            "priority": st.one_of(st.integers(-5, 5), st.floats()), "gw_priority": SCALARS,
            "interface_name": TEXT, "mac_address": TEXT, "link_local_ips": st.lists(WORDS, max_size=2, unique=True),
            "driver_opts": st.dictionaries(WORDS, SCALARS, max_size=2)})), max_size=3)),
    "network_mode": WORDS,
    "depends_on": st.lists(WORDS, max_size=2, unique=True),
    "links": st.lists(WORDS, max_size=2, unique=True),
    "scale": st.one_of(st.integers(-2, 3), WORDS),
    "deploy": st.fixed_dictionaries({"replicas": st.one_of(st.integers(-2, 3), WORDS, st.floats())}),
    "mac_address": TEXT, "hostname": TEXT, "sysctls": st.dictionaries(WORDS, SCALARS, max_size=2),
    "environment": st.one_of(st.dictionaries(WORDS, SCALARS, max_size=2), st.lists(WORDS, max_size=2, unique=True)),
    "container_name": WORDS,
    "dns": st.lists(WORDS, max_size=2),
    "extra_hosts": st.lists(WORDS, max_size=2, unique=True),
    "expose": st.lists(WORDS, max_size=2, unique=True),
    "profiles": st.lists(st.sampled_from(["a", "b"]), max_size=1),
    "extends": st.one_of(WORDS, st.fixed_dictionaries({"service": WORDS}, optional={"file": st.sampled_from(
        ["compose.yml", "again.yml", "seed.yml", "nope.yml"])})),
}), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["front", "back", "default"]), st.fixed_dictionaries({}, optional={
        "driver": st.sampled_from(["bridge", "macvlan", "ipvlan", "brige", "overlay", "host"]),
        "external": st.booleans(), "name": WORDS, "enable_ipv6": st.booleans(), "internal": st.booleans(),
        "driver_opts": st.dictionaries(st.sampled_from(["com.docker.network.bridge.name",
                                                        "com.docker.network.driver.mtu", "parent", "macvlan_mode",
                                                        "ipvlan_mode"]), TEXT, max_size=2),
        "ipam": st.fixed_dictionaries({"config": st.lists(st.fixed_dictionaries({}, optional={
            "subnet": TEXT, "gateway": TEXT, "ip_range": TEXT,
            "aux_addresses": st.dictionaries(st.sampled_from(["r", "s"]), TEXT, max_size=2)}), max_size=2)}),
    }), max_size=3))
def test_semantically_random_projects(services, networks):
    run(yaml.safe_dump({"services": services, "networks": networks}))
