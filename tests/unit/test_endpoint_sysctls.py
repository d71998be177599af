"""Per-endpoint sysctls (`com.docker.network.endpoint.sysctls`): what they become, and the abuse
they must not allow. A compose file comes from a stranger; each setting becomes a write under
/proc/sys as root, so only the attachment's own interface may be reached (the kernel test
shows the settings land inside, tests/kernel/test_gateway_modes_traffic.py)."""

from __future__ import annotations

import pytest

from compose_net.drivers.base import endpoint_sysctls, interface_sysctls
from compose_net.errors import ConfigError, ConfigErrors, PlanError
from compose_net.loader import LoadOptions, load
from compose_net.plan.planner import plan_up
from compose_net.probe import HostFacts

OPT = "com.docker.network.endpoint.sysctls"


def test_ifname_is_replaced_by_the_interface_name_as_one_path_step():
    assert interface_sysctls("net.ipv4.conf.IFNAME.forwarding=1, net.ipv6.conf.IFNAME.accept_ra=2,"
                             "net.mpls.conf.IFNAME.input=1,net.ipv4.neigh.IFNAME.base_reachable_time_ms=9000",
                             "eth0") == (
        ("net/ipv4/conf/eth0/forwarding", "1"), ("net/ipv6/conf/eth0/accept_ra", "2"),
        ("net/mpls/conf/eth0/input", "1"), ("net/ipv4/neigh/eth0/base_reachable_time_ms", "9000"))
    # an interface name with a dot stays one step (sysctl(8) writes it eth0/5 in dotted form)
    assert interface_sysctls("net.ipv4.conf.IFNAME.forwarding=1", "eth0.5") == (
        ("net/ipv4/conf/eth0.5/forwarding", "1"),)


@pytest.mark.parametrize("setting, words", [
    ("kernel.core_pattern=|/tmp/x", "only net.ipv4., net.ipv6. and net.mpls. keys"),
    ("net.core.somaxconn=1", "only net.ipv4., net.ipv6. and net.mpls. keys"),
    ("vm.overcommit_memory=1", "only net.ipv4., net.ipv6. and net.mpls. keys"),
    ("net.ipv4.ip_forward=1", "is not a setting of this interface"),
    ("net.ipv4.conf.all.forwarding=1", "is not a setting of this interface"),
    ("net.ipv4.conf.default.forwarding=1", "is not a setting of this interface"),
    ("net.ipv6.conf.eth1.disable_ipv6=1", "is not a setting of this interface"),
    ("net.ipv6.conf.lo.disable_ipv6=1", "is not a setting of this interface"),
    ("net.ipv4.conf.IFNAME.x.y=1", "is not a setting of this interface"),
    ("net.ipv4.route.flush=1", "is not a setting of this interface"),
    ("net.ipv4.conf.IFNAME/../../../kernel/core_pattern=x", "invalid sysctl name"),
    ("net.ipv4.conf.IFNAME..forwarding=1", "invalid sysctl name"),
    ("net.ipv4.conf.IFNAME.forwarding=1\nkernel.x=1", "is not one word"),
    ("net.ipv4.conf.IFNAME.forwarding=1 2", "is not one word"),
    ("net.ipv4.conf.IFNAME.forwarding=", "is not one word"),
    ("net.ipv4.conf.IFNAME.forwarding", "is not KEY=VALUE"),
    ("net.ipv4.conf.IFNAME.forwarding=1,,", "empty setting"),
])
def test_every_other_key_is_refused_with_the_key_named(setting, words):
    settings, problems = endpoint_sysctls(setting)
    assert problems and words in problems[0]
    with pytest.raises(PlanError):
        interface_sysctls(setting, "eth0")


@pytest.mark.parametrize("ifname", ["all", "default", "..", ".", "a/b", "x" * 16, ""])
def test_ifname_substitution_cannot_reach_another_interface_or_file(ifname):
    with pytest.raises(PlanError, match="refusing per-endpoint sysctls for interface name"):
        interface_sysctls("net.ipv4.conf.IFNAME.forwarding=1", ifname)


def test_the_loader_names_the_key_and_the_plan_applies_inside_the_container(tmp_path):
    def compose(value: str, ifname: str = "") -> None:
        name = f"        interface_name: {ifname}\n" if ifname else ""
        (tmp_path / "compose.yml").write_text(
            "services:\n  a:\n    image: x\n    networks:\n      n:\n" + name +
            f"        driver_opts:\n          {OPT}: \"{value}\"\nnetworks:\n  n: {{}}\n")

    def plan():
        result = load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="es"))
        return plan_up(result.project, HostFacts())

    compose("net.ipv4.conf.IFNAME.forwarding=1,net.ipv6.conf.IFNAME.accept_ra=2")
    ops = [o for o in plan().ops if o.kind == "sysctl" and o.ns is not None and "/" in o.key]
    assert [(o.ns, o.key, o.value) for o in ops] == [("es-a-1", "net/ipv4/conf/eth0/forwarding", "1"),
                                                     ("es-a-1", "net/ipv6/conf/eth0/accept_ra", "2")]
    # they come before the link is up, and the link they name lives in that namespace
    all_ops = plan().ops
    first_up = next(i for i, o in enumerate(all_ops) if o.kind == "link_up" and o.ns == "es-a-1")
    assert all(all_ops.index(o) < first_up for o in ops)
    assert ("link", "es-a-1", "eth0") in ops[0].owners()
    compose("net.ipv4.conf.all.forwarding=1")
    with pytest.raises((ConfigError, ConfigErrors)) as e:
        plan()
    assert "compose.yml:7: services.a.networks.n.driver_opts.com.docker.network.endpoint.sysctls: " \
           'sysctl "net.ipv4.conf.all.forwarding" is not a setting of this interface' in str(e.value)
    # an interface named like a tree of its own: refused at plan time (the kernel would not make it anyway)
    compose("net.ipv4.conf.IFNAME.forwarding=1", ifname="default")
    with pytest.raises(ConfigError, match="refusing per-endpoint sysctls for interface name 'default'"):
        plan()
