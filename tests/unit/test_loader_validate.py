"""Stage 4: jsonschema, with our schema, accepts every valid Compose file and reports every problem at once,
naming each bad value as it was written."""

import json

import jsonschema
import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader import LoadOptions, load, validate
from compose_net.loader.source import load_source

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
    return [str(e) for e in validate.validate(src.data, src.loc)]


@pytest.fixture
def schema_with(monkeypatch):
    """Validate with our schema plus one change (a keyword at a path), through a fresh validator."""

    def install(change):
        sch = validate.schema()
        change(sch["definitions"])
        monkeypatch.setattr(validate, "_validator", validate.build(sch))

    return install


def test_a_file_using_every_kind_of_key_is_valid():
    assert problems(FULL) == []


def test_schema_is_a_valid_draft7_schema_and_jsonschema_judges_with_that_draft():
    with open(validate.SCHEMA_PATH) as fh:
        schema = json.load(fh)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    assert "service" in schema["definitions"] and "network" in schema["definitions"]
    jsonschema.Draft7Validator.check_schema(schema)
    assert type(validate.validator()) is jsonschema.Draft7Validator
    # the schema uses no `format`, so nothing pays for a format checker
    assert validate.validator().format_checker is None


def test_refs_are_resolved_once_with_the_same_judgement():
    raw = jsonschema.Draft7Validator(validate.schema())
    built = validate.validator()
    assert "$ref" not in json.dumps(built.schema)
    src = load_source("c.yml", text=BAD)[0]
    def judged(v):
        return sorted((list(e.absolute_path), e.validator, repr(e.instance)) for e in v.iter_errors(src.data))

    assert judged(built) == judged(raw) != []


def test_a_schema_that_refers_to_itself_keeps_its_ref():
    tree = {"$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"node": {"type": "object", "additionalProperties": {"$ref": "#/definitions/node"}}},
            "$ref": "#/definitions/node"}
    v = validate.build(tree)
    assert v.is_valid({"a": {"b": {}}})
    assert not v.is_valid({"a": {"b": {"c": 1}}})


def test_the_validator_is_built_once_per_process(monkeypatch, tmp_path):
    built = []

    def counting_build(sch):
        built.append(1)
        return jsonschema.Draft7Validator(sch)

    monkeypatch.setattr(validate, "_validator", None)
    monkeypatch.setattr(validate, "build", counting_build)
    (tmp_path / "other.yml").write_text("services:\n  db: {image: postgres}\n")
    (tmp_path / "compose.yml").write_text("include: [other.yml]\nservices:\n  web: {image: nginx}\n")
    (tmp_path / "bad.yml").write_text("services:\n  web: {image: 7}\n")
    for _ in range(3):
        load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}))
        with pytest.raises(ConfigErrors):
            load(LoadOptions(files=("bad.yml",), cwd=str(tmp_path), environ={}))
    assert built == [1]
    assert validate.validator() is validate.validator()


BAD = """services:
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
"""


def test_every_problem_is_reported_at_its_line():
    assert problems(BAD) == [
        'c.yml:3: services.web.imgae: unknown key "imgae" in services.web (did you mean "image"?)',
        "c.yml:4: services.web.ports: must be a list, not the integer 80",
        'c.yml:7: services.web.networks.front.ipv4_adress: unknown key "ipv4_adress" in services.web.networks.front (did you mean "ipv4_address"?)',
        'c.yml:8: services.web.depends_on.db.condition: "started" is not one of: service_started, service_healthy, service_completed_successfully',
        "c.yml:9: services.web.dns[0]: must be a string, not the integer 1",
        'c.yml:10: services.bad name!: invalid name "bad name!": use only letters, digits, ".", "_" and "-"',
        "c.yml:12: networks.front.driver: must be a string, not the integer 7",
        "c.yml:13: volumes: must be a mapping or empty (null), not a list",
        'c.yml:14: bogus: unknown key "bogus" in the top level',
    ]


@pytest.mark.parametrize("text, message", [
    ("services: {a: {image: nginx, ports: \"80:80\"}}", 'must be a list, not the string "80:80"'),
    ("services: {a: {image: true}}", "must be a string, not the boolean true"),
    ("services: {a: {image: 1.5}}", "must be a string, not the number 1.5"),
    ("services: {a: {image: [x]}}", "must be a string, not a list"),
    ("services: {a: {expose: [80, 80]}}", "duplicate entry 80"),
    ("services: {a: {container_name: \"!\"}}", 'invalid container name "!": use at least two characters'),
    ("services: {a: {oom_score_adj: -1001}}", "must be at least -1000, not -1001"),
    ("services: {a: {depends_on: {b: {condition: 7}}}}", "7 is not one of: service_started"),
])
def test_a_message_names_the_value_as_written(text, message):
    [line] = problems(text + "\n")
    assert message in line


def test_a_value_is_quoted_on_one_line_and_cut_when_long():
    [line] = problems('services: {a: {image: nginx, ports: "80\\n81\\u001b"}}\n')
    assert line.endswith(r'must be a list, not the string "80\n81\x1b"')
    [line] = problems(f"services: {{a: {{image: nginx, ports: {'9' * 100}x}}}}\n")
    assert "9" * 80 + '..."' in line and "9" * 81 not in line
    [error] = validate.validate({"services": {"a": {"k" * 100: 1}}}, load_source("c.yml", text="{}")[0].loc)
    assert error.message == f'unknown key "{"k" * 80}..." in services.a'


# Keywords the schema may use that a hand-written checker would each have had to implement;
# jsonschema judges them, and every message names the value.
@pytest.mark.parametrize("change, text, expected", [
    (lambda d: d["service"]["properties"].__setitem__("scale", {"type": "integer", "maximum": 65535}),
     "services: {a: {scale: 70000}}", "c.yml:1: services.a.scale: must be at most 65535, not 70000"),
    (lambda d: d["service"]["properties"].__setitem__("scale", {"type": "integer", "minimum": 0}),
     "services: {a: {scale: -1}}", "c.yml:1: services.a.scale: must be at least 0, not -1"),
    (lambda d: d["service"]["properties"].__setitem__("hostname", {"type": "string", "maxLength": 5}),
     "services: {a: {hostname: abcdefg}}",
     'c.yml:1: services.a.hostname: must be at most 5 characters long, not "abcdefg" (7)'),
    (lambda d: d["service"]["properties"].__setitem__("hostname", {"type": "string", "pattern": "^[a-z]+$"}),
     "services: {a: {hostname: Web-1}}", 'c.yml:1: services.a.hostname: "Web-1" does not match ^[a-z]+$'),
    (lambda d: d["service"]["properties"].__setitem__("hostname", {"const": "fixed"}),
     "services: {a: {hostname: other}}", 'c.yml:1: services.a.hostname: must be "fixed", not "other"'),
    (lambda d: d["service"]["properties"].__setitem__("hostname", {"not": {"enum": ["localhost"]}}),
     "services: {a: {hostname: localhost}}", 'c.yml:1: services.a.hostname: "localhost" is not allowed here'),
    (lambda d: d["service"]["properties"].__setitem__("dns", {"type": "array", "maxItems": 3}),
     "services: {a: {dns: [a, b, c, d]}}", "c.yml:1: services.a.dns: must have at most 3 entries, not 4"),
    (lambda d: d["service"]["properties"].__setitem__(
        "scale", {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]}),
     "services: {a: {scale: 0}}", "c.yml:1: services.a.scale: must be at least 1, not 0"),
    (lambda d: d["service"]["properties"].__setitem__(
        "scale", {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]+$"}]}),
     "services: {a: {scale: [1]}}", "c.yml:1: services.a.scale: must be an integer or a string, not a list"),
    (lambda d: d["service"].__setitem__("dependencies", {"hostname": ["domainname"]}),
     "services: {a: {hostname: h}}", 'c.yml:1: services.a.hostname: "hostname" needs "domainname" in services.a too'),
    (lambda d: d["service"]["properties"].__setitem__("hostname", {"type": "string", "format": "ipv4"}),
     "services: {a: {hostname: 10.0.0.300}}", 'c.yml:1: services.a.hostname: "10.0.0.300" is not a valid IPv4 address'),
])
def test_jsonschema_judges_every_keyword_of_the_schema(schema_with, change, text, expected):
    schema_with(change)
    assert problems(text + "\n") == [expected]
    assert validate.validator().is_valid({"services": {"a": {}}})


def test_a_format_checker_is_used_only_when_the_schema_has_a_format(schema_with):
    schema_with(lambda d: d["service"]["properties"].__setitem__("hostname", {"type": "string", "format": "ipv4"}))
    assert validate.validator().format_checker is not None
    # a property called "format" is not the keyword
    schema_with(lambda d: d["service"]["properties"].__setitem__("format", {"type": "string"}))
    assert validate.validator().format_checker is None
