"""`config` output: Compose's canonical form, YAML that our loader reads back, or JSON."""

import json

import yaml

from compose_net.loader import LoadOptions, load
from compose_net.loader.config_output import render

COMPOSE = """\
services:
  web:
    image: "nginx"
    ports: ["8080-8081:80-81", "127.0.0.1:53:53/udp", "9000-9005:90"]
    environment: {N: 1, B: true, S: "0o17", E: "1e3", Y: "yes"}
    networks: [front]
    labels: ["com.example=1"]
  worker:
    image: busybox
networks:
  front:
    name: verbatim-front
volumes:
  data: {}
"""


def result(tmp_path, text=COMPOSE, name="demo"):
    (tmp_path / "compose.yml").write_text(text)
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name=name))


def test_yaml_like_docker_compose_config(tmp_path):
    out = yaml.safe_load(render(result(tmp_path), "yaml"))
    assert list(out) == ["name", "services", "networks", "volumes"]
    web = out["services"]["web"]
    assert web["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "target": 81, "published": "8081", "protocol": "tcp"},
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 53, "published": "53", "protocol": "udp"},
        {"mode": "ingress", "target": 90, "published": "9000-9005", "protocol": "tcp"},
    ]
    assert web["environment"] == {"N": "1", "B": "true", "S": "0o17", "E": "1e3", "Y": "yes"}
    assert web["networks"] == {"front": None}
    assert out["services"]["worker"]["networks"] == {"default": None}
    assert out["networks"] == {"front": {"name": "verbatim-front"}, "default": {"name": "demo_default"}}
    assert out["volumes"] == {"data": {}}


def test_yaml_round_trips_through_our_loader(tmp_path):
    first = result(tmp_path)
    text = render(first, "yaml")
    (tmp_path / "again").mkdir()
    again = result(tmp_path / "again", text)
    assert render(again, "yaml") == text
    assert sorted(n.name for n in again.project.networks.values()) == sorted(n.name for n in first.project.networks.values())
    assert again.project.containers == first.project.containers


def test_json(tmp_path):
    out = json.loads(render(result(tmp_path), "json"))
    assert out["name"] == "demo" and out["services"]["web"]["ports"][0]["published"] == "8080"
