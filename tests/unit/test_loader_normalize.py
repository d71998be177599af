"""Stage 5: short syntax to long, implicit default network, full names, profiles."""

import pytest

from compose_net.loader.normalize import active_profiles, normalize, parse_extra_host, parse_port


def norm(data, project="shop", profiles=(), environ=None):
    return normalize(data, project, frozenset(profiles), environ or {})


@pytest.mark.parametrize("short, expected", [
    (80, dict(target=80, target_end=80, published=None, host_ip=None, protocol="tcp")),
    ("80", dict(target=80, target_end=80, published=None, host_ip=None, protocol="tcp")),
    ("8080:80", dict(target=80, target_end=80, published="8080", host_ip=None, protocol="tcp")),
    ("127.0.0.1:8080:80/udp", dict(target=80, target_end=80, published="8080", host_ip="127.0.0.1", protocol="udp")),
    ("127.0.0.1::80", dict(target=80, target_end=80, published=None, host_ip="127.0.0.1", protocol="tcp")),
    ("[::1]:8080:80", dict(target=80, target_end=80, published="8080", host_ip="::1", protocol="tcp")),
    ("9000-9002:8000-8002/sctp", dict(target=8000, target_end=8002, published="9000-9002", protocol="sctp")),
    ("8000-8010:80", dict(target=80, target_end=80, published="8000-8010")),
    ({"target": "80", "published": 8080, "host_ip": "10.0.0.1", "protocol": "UDP"},
     dict(target=80, target_end=80, published="8080", host_ip="10.0.0.1", protocol="udp")),
])
def test_port_syntax(short, expected):
    port = parse_port(short)
    assert {k: port[k] for k in expected} == expected


@pytest.mark.parametrize("bad", ["", "abc", "80:", "1.2.3.4:80:90:100x", "80/", "8080:80a", True, 1.5])
def test_bad_ports_raise(bad):
    with pytest.raises(ValueError):
        parse_port(bad)


def test_extra_hosts_forms():
    assert parse_extra_host("db:10.0.0.1") == ("db", "10.0.0.1")
    assert parse_extra_host("db=::1") == ("db", "::1")
    assert parse_extra_host("v6:[fe80::1]") == ("v6", "fe80::1")
    assert parse_extra_host("gw:host-gateway") == ("gw", "host-gateway")
    with pytest.raises(ValueError):
        parse_extra_host("nocolon")
    out = norm({"services": {"a": {"extra_hosts": {"x": "1.2.3.4", "y": ["::1", "10.0.0.2"]}},
                             "b": {"extra_hosts": ["z:1.1.1.1"]}}})
    assert out["services"]["a"]["extra_hosts"] == ["x=1.2.3.4", "y=::1", "y=10.0.0.2"]
    assert out["services"]["b"]["extra_hosts"] == ["z=1.1.1.1"]


def test_networks_default_and_full_names():
    out = norm({
        "services": {
            "web": {"networks": ["front"]},
            "worker": {},
            "host": {"network_mode": "host"},
        },
        "networks": {"front": None, "custom": {"name": "verbatim"}, "ext": {"external": True},
                     "old": {"external": {"name": "legacy"}}, "unused": {}},
    })
    assert out["services"]["web"]["networks"] == {"front": None}
    assert out["services"]["worker"]["networks"] == {"default": None}
    assert "networks" not in out["services"]["host"]
    names = {k: v["name"] for k, v in out["networks"].items()}
    assert names == {"front": "shop_front", "custom": "verbatim", "ext": "ext", "old": "legacy",
                     "unused": "shop_unused", "default": "shop_default"}
    assert out["networks"]["old"]["external"] is True


def test_no_default_network_when_nobody_needs_it():
    out = norm({"services": {"a": {"networks": ["n"]}, "b": {"network_mode": "none"}}, "networks": {"n": {}}})
    assert set(out["networks"]) == {"n"}


def test_depends_on_environment_and_numbers():
    out = norm({"services": {"a": {
        "depends_on": ["b"], "environment": ["X=1", "FROM_SHELL", "UNSET"],
        "labels": {"n": 5}, "scale": "3", "deploy": {"replicas": "3"},
    }, "b": {"environment": {"N": 1, "F": 1.5, "B": False, "NONE": None}}}}, environ={"FROM_SHELL": "s"})
    a, b = out["services"]["a"], out["services"]["b"]
    assert a["depends_on"] == {"b": {"condition": "service_started", "required": True}}
    assert a["environment"] == {"X": "1", "FROM_SHELL": "s", "UNSET": None}
    assert a["labels"] == {"n": "5"}
    assert a["scale"] == 3 and a["deploy"]["replicas"] == 3
    assert b["environment"] == {"N": "1", "F": "1.5", "B": "false", "NONE": None}


def test_profiles_leave_services_and_their_networks_out():
    data = {"services": {"web": {}, "debug": {"profiles": ["dbg"], "networks": ["dbgnet"]},
                         "all": {"profiles": ["x", "y"]}},
            "networks": {"dbgnet": {}}}
    out = norm(data)
    assert list(out["services"]) == ["web"] and "dbgnet" not in out["networks"]
    out = norm(data, profiles=["dbg"])
    assert list(out["services"]) == ["web", "debug"] and "dbgnet" in out["networks"]
    assert list(norm(data, profiles=["*"])["services"]) == ["web", "debug", "all"]
    assert active_profiles(["a"], {"COMPOSE_PROFILES": "b, c"}) == {"a", "b", "c"}


def test_targeted_services_are_enabled_with_their_dependencies_whatever_their_profiles():
    from compose_net.loader.normalize import targeted_services

    services = {
        "web": {},
        "dbg": {"profiles": ["debug"], "depends_on": ["tool"], "links": ["cache:c"]},
        "tool": {"profiles": ["tools"], "network_mode": "service:base"},
        "base": {"profiles": ["x"]},
        "cache": {"profiles": ["y"], "depends_on": {"nosuch": {"condition": "service_started"}}},
        "other": {"profiles": ["z"]},
    }
    enabled = targeted_services(services, ["dbg"])
    assert enabled == {"dbg", "tool", "base", "cache"}
    out = normalize({"services": services}, "p", frozenset(), {}, enabled)
    assert set(out["services"]) == {"web", "dbg", "tool", "base", "cache"}
    assert set(norm({"services": services})["services"]) == {"web"}
