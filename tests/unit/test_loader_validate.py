"""Stage 4: our JSON Schema accepts every valid Compose file and reports every problem at once."""

import json

import pytest

from compose_net.loader.source import load_source
from compose_net.loader.validate import SCHEMA_PATH, fast_check, validate, validator

FULL = """
version: "3.9"
name: everything
x-common: &common {restart: always}
include: [other.yml]
services:
  web:
    <<: *common
    image: nginx
    build: {context: ., dockerfile: Dockerfile, args: [A=1], target: prod, x-extra: 1}
    command: ["nginx", "-g", "daemon off;"]
    entrypoint: /bin/sh
    environment: {A: 1, B: true, C: null, D: "x"}
    env_file: [.env, {path: extra.env, required: false}]
    volumes: [./data:/data, {type: volume, source: v, target: /v}]
    healthcheck: {test: [CMD, "true"], interval: 10s, retries: 3}
    deploy: {replicas: 2, resources: {limits: {cpus: "0.5", memory: 50M}}, x-note: ok}
    configs: [cfg]
    secrets: [{source: sec, target: /run/s}]
    labels: [a=b]
    logging: {driver: json-file, options: {max-size: 10m}}
    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 65535}
    ports: [80, "8080:80", {target: 81, published: "8081", protocol: udp, mode: host}]
    expose: [3000, "3001/udp"]
    networks:
      front:
        aliases: [www]
        ipv4_address: 172.20.0.5
        priority: 10
        gw_priority: 1
        interface_name: eth5
        mac_address: 02:42:ac:14:00:05
        x-meta: yes
      back:
    dns: 1.1.1.1
    dns_search: [example.com]
    extra_hosts: {host1: 10.0.0.1, host2: [10.0.0.2, "::1"]}
    sysctls: {net.ipv4.ip_forward: 1}
    cap_add: [NET_ADMIN]
    depends_on: {db: {condition: service_healthy, restart: true}}
    develop: {watch: [{path: ./src, action: sync, target: /src}]}
    x-anything: {goes: here}
  db:
    image: postgres
    network_mode: "service:web"
    scale: 1
    profiles: [debug]
    depends_on: [cache]
    extra_hosts: ["a:1.2.3.4", "b=::1"]
networks:
  front:
    driver: bridge
    driver_opts: {com.docker.network.driver.mtu: 1400}
    ipam: {driver: default, config: [{subnet: 172.20.0.0/16, gateway: 172.20.0.1, aux_addresses: {r: 172.20.0.2}}]}
    labels: {a: b}
    internal: false
    enable_ipv6: true
    attachable: true
    x-note: ok
  back:
  ext: {external: true, name: shared}
volumes: {v: {driver: local}, w: }
secrets: {sec: {file: ./s.txt}}
configs: {cfg: {content: hi}}
"""


def problems(text):
    src = load_source("c.yml", text=text)[0]
    return [str(e) for e in validate(src.data, src.loc)]


def test_a_file_using_every_kind_of_key_is_valid():
    assert problems(FULL) == []


def test_schema_is_our_own_draft7_file():
    with open(SCHEMA_PATH) as fh:
        schema = json.load(fh)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    assert "service" in schema["definitions"] and "network" in schema["definitions"]
    assert validator() is validator()  # compiled once


def test_every_problem_is_reported_at_its_line():
    assert problems("""services:
  web:
    imgae: nginx
    ports: 80
    networks:
      front:
        ipv4_adress: 1.2.3.4
    depends_on: {db: {condition: started}}
    dns: [1]
  "bad name!": {}
networks:
  front: {driver: 7}
volumes: [a]
bogus: 1
""") == [
        'c.yml:3: services.web.imgae: unknown key "imgae" in services.web (did you mean "image"?)',
        "c.yml:4: services.web.ports: must be a list, not an integer",
        'c.yml:7: services.web.networks.front.ipv4_adress: unknown key "ipv4_adress" in services.web.networks.front (did you mean "ipv4_address"?)',
        'c.yml:8: services.web.depends_on.db.condition: "started" is not one of: service_started, service_healthy, service_completed_successfully',
        "c.yml:9: services.web.dns[0]: must be a string, not an integer",
        'c.yml:10: services.bad name!: invalid name "bad name!": use only letters, digits, ".", "_" and "-"',
        "c.yml:12: networks.front.driver: must be a string, not an integer",
        "c.yml:13: volumes: must be a mapping or empty (null), not a list",
        'c.yml:14: bogus: unknown key "bogus" in the top level',
    ]


@pytest.mark.parametrize("doc", [
    {"services": {"a": {"ports": [{"target": 80, "x-y": 1}]}}},
    {"services": {"a": {"ports": [{"target": 80, "bogus": 1}]}}},
    {"services": {"a": {"expose": [80, 80]}}},
    {"services": {"a": {"deploy": {"replicas": 1.5}}}},
    {"services": {"a": {"deploy": {"replicas": 2.0}}}},
    {"services": {"a": {"networks": {"n": None}}}},
    {"services": {"a": {"networks": {"n": {"priority": True}}}}},
    {"services": {"a": {"cgroup": "host"}}},
    {"services": {"a": {"cgroup": "nope"}}},
    {"networks": {"n": {"external": {"name": "x"}}}},
    {"networks": {"n": {"external": {"nme": "x"}}}},
    {"services": {"a": {"depends_on": {"b": {}}}}},
    {"x-top": [1, 2], "services": None},
])
def test_fast_checker_agrees_with_jsonschema(doc):
    assert fast_check(doc) == validator().is_valid(doc)
