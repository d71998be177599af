"""Stage 3: several -f files merged with Compose's rules, lines kept from the file a value came from."""

from compose_net.keypath import locate, parse_path
from compose_net.loader.merge import merge_files
from compose_net.loader.source import load_source

BASE = """services:
  web:
    image: nginx:1
    ports: ["80:80", "443:443"]
    expose: ["3000"]
    dns: [1.1.1.1]
    environment: [A=1, B=2]
    networks:
      front:
        aliases: [www]
    depends_on: [db]
    command: [run, base]
  db:
    image: pg
networks:
  front: {}
"""
OVERRIDE = """services:
  web:
    image: nginx:2
    ports: ["443:443", "8080:8080"]
    expose: ["3000", "3001"]
    dns: 8.8.8.8
    environment: {B: "3", C: "4"}
    networks: [back, front]
    depends_on:
      cache: {condition: service_healthy}
    command: [run, override]
  cache:
    image: redis
networks:
  back: {}
"""


def merged(*texts):
    sources = [load_source(f"f{i}.yml", text=t)[0] for i, t in enumerate(texts)]
    return merge_files(sources)


def test_compose_merge_rules():
    data, loc = merged(BASE, OVERRIDE)
    web = data["services"]["web"]
    assert web["image"] == "nginx:2"  # scalars: later wins
    assert web["ports"] == ["80:80", "443:443", "8080:8080"]  # append, de-duplicated
    assert web["expose"] == ["3000", "3001"]
    assert web["dns"] == "8.8.8.8"  # a string replaces (types differ)
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}  # list and map merge by key
    assert web["networks"] == {"front": {"aliases": ["www"]}, "back": None}  # per network; null keeps settings
    assert web["depends_on"] == {"db": None, "cache": {"condition": "service_healthy"}}
    assert web["command"] == ["run", "override"]  # commands are replaced
    assert set(data["services"]) == {"web", "db", "cache"} and set(data["networks"]) == {"front", "back"}

    def where(path):
        return locate(loc, data, parse_path(path))
    assert where("services.web.image") == ("f1.yml", 3)
    assert where("services.web.ports[0]") == ("f0.yml", 4)
    assert where("services.web.ports[2]") == ("f1.yml", 4)
    assert where("services.web.networks.front.aliases") == ("f0.yml", 10)
    assert where("services.db.image") == ("f0.yml", 14)
    assert where("services.cache") == ("f1.yml", 12)


def test_long_ports_deduplicate_by_their_unique_key():
    data, _ = merged("services: {a: {ports: [{target: 80, published: 8080}]}}",
                     "services: {a: {ports: [{target: 80, published: '8080'}, {target: 81}]}}")
    assert data["services"]["a"]["ports"] == [{"target": 80, "published": 8080}, {"target": 81}]


def test_reset_and_override_tags():
    data, _ = merged("services: {a: {ports: ['80:80'], dns: [1.1.1.1], image: x}}",
                     "services: {a: {ports: !reset [], dns: !override [9.9.9.9]}}")
    assert data["services"]["a"] == {"dns": ["9.9.9.9"], "image": "x"}


def test_single_file_is_unchanged():
    data, _ = merged(BASE)
    assert data == load_source("x.yml", text=BASE)[0].data
