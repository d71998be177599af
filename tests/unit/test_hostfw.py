"""The host's other firewalls: what the probe reads of them and what the plan adds there."""

from __future__ import annotations

from compose_net import hostfw
from compose_net.plan import ops as O
from compose_net.plan.planner import plan_up, summary
from compose_net.plan.render import render_text
from compose_net.probe import HostFacts, HostFirewall, read_firewall
from planning_projects import att, net, project, svc


def chain(family, table, name, hook=None, policy=None, prio=0):
    c = {"family": family, "table": table, "name": name, "handle": 1}
    if hook:
        c.update(type="filter", hook=hook, prio=prio, policy=policy or "accept")
    return c


DOCKER = [chain("ip", "filter", "INPUT", "input"), chain("ip", "filter", "FORWARD", "forward", "drop"),
          chain("ip", "filter", "OUTPUT", "output"), chain("ip", "filter", "DOCKER"),
          chain("ip", "filter", "DOCKER-ISOLATION-STAGE-1"), chain("ip", "filter", "DOCKER-ISOLATION-STAGE-2"),
          chain("ip", "filter", "DOCKER-USER"), chain("ip", "nat", "PREROUTING", "prerouting", prio=-100),
          chain("ip", "nat", "POSTROUTING", "postrouting", prio=100), chain("ip", "nat", "DOCKER"),
          # compose-net's own tables are never another owner's
          chain("inet", "cn-other", "forward", "forward")]
UFW = [chain("ip", "filter", "INPUT", "input", "drop"), chain("ip", "filter", "FORWARD", "forward", "drop"),
       chain("ip", "filter", "ufw-before-forward"), chain("ip", "filter", "ufw-user-forward")]
HANDMADE = [chain("ip", "filter", "FORWARD", "forward", "drop")]
FIREWALLD = [chain("inet", "firewalld", "filter_FORWARD", "forward", "accept", prio=10),
             chain("inet", "firewalld", "filter_INPUT", "input", "accept", prio=10)]
NATIVE = [chain("inet", "filter", "forward", "forward", "drop")]


def two_networks(name="shop"):
    return project(name, [svc("a", att("front")), svc("b", att("back")), svc("c", network_mode="bridge")],
                   [net("front", name), net("back", name)])


def host_ops(chains, running=False, p=None):
    fw = read_firewall(chains)
    if running:
        from dataclasses import replace
        fw = replace(fw, firewalld_running=True)
    plan = plan_up(p or two_networks(), HostFacts(firewall=fw))
    return plan, [o for o in plan.ops if o.unit == hostfw.UNIT]


def test_probe_reads_base_chains_and_owners_but_not_our_own_tables():
    fw = read_firewall(DOCKER)
    assert fw.known and fw.has("ip", "filter", "DOCKER-USER")
    assert ("inet", "cn-other") not in fw.tables()
    forward = [c for c in fw.chains if c.hook == "forward"]
    assert [(c.table, c.name, c.policy) for c in forward] == [("filter", "FORWARD", "drop")]
    assert read_firewall(None) == HostFirewall()  # unreadable: nothing is planned for it


def test_bare_host_gets_nothing():
    assert host_ops([])[1] == []
    plan = plan_up(two_networks(), HostFacts())
    assert not [o for o in plan.ops if o.unit == hostfw.UNIT]


def test_docker_forward_drop_gets_accepts_for_each_bridge_in_docker_user():
    plan, ops = host_ops(DOCKER)
    s = summary(two_networks())
    bridges = [n.bridge for n in s.networks]
    assert len(bridges) == 3 and "cn0" in bridges
    assert {(o.family, o.table, o.chain, o.owner) for o in ops} == {("ip", "filter", "DOCKER-USER", "Docker")}
    assert [o.rule[:2] for o in ops] == [(d, b) for b in bridges for d in ("-i", "-o")]
    for o in ops:
        assert o.rule[2:5] == ("-m", "comment", "--comment") and o.rule[5].startswith("compose-net shop: ")
        assert o.rule[-2:] == ("-j", "ACCEPT")
    # after the project's own table, so isolation is in place before the chain opens
    kinds = [o.kind for o in plan.ops]
    assert kinds.index("nft_apply") < kinds.index("iptables_insert")
    text = render_text(plan)
    assert "other firewalls of the host" in text
    assert "iptables -t filter -I DOCKER-USER -i cn-" in text and "'compose-net shop: from network shop_front'" in text
    assert any("drops forwarded traffic (Docker)" in n and "DOCKER-USER" in n for n in plan.notes)


def test_ops_invert_to_deleting_exactly_that_rule_and_survive_the_journal():
    _, ops = host_ops(DOCKER)
    inv = ops[0].inverse()
    assert isinstance(inv, O.IptablesDelete) and inv.rule == ops[0].rule and inv.chain == "DOCKER-USER"
    assert inv.describe().startswith("iptables -t filter -D DOCKER-USER -i cn-")
    for op in ops + [inv]:
        assert O.op_from_json(op.to_json()) == op
    torn = O.teardown(tuple(ops))
    assert torn == tuple(o.inverse() for o in reversed(ops))


def test_ufw_rules_go_in_ufw_user_forward_and_input_drop_is_only_noted():
    plan, ops = host_ops(UFW)
    assert {(o.chain, o.owner) for o in ops} == {("ufw-user-forward", "ufw")}
    assert any("INPUT" in n and "drops by policy" in n for n in plan.notes)


def test_hand_made_forward_drop_gets_rules_at_the_head_of_forward():
    _, ops = host_ops(HANDMADE)
    assert ops and {(o.chain, o.owner) for o in ops} == {("FORWARD", "iptables (hand-made)")}


def test_ip6_rules_only_for_bridges_with_ipv6():
    p = project("v6", [svc("a", att("n6")), svc("b", att("n4"))], [net("n6", "v6", enable_ipv6=True), net("n4", "v6")])
    chains = DOCKER + [chain("ip6", "filter", "FORWARD", "forward", "drop"), chain("ip6", "filter", "DOCKER-USER")]
    _, ops = host_ops(chains, p=p)
    six = {o.rule[1] for o in ops if o.family == "ip6"}
    four = {o.rule[1] for o in ops if o.family == "ip"}
    assert len(six) == 1 and len(four) == 2 and six < four


def test_firewalld_running_puts_bridges_in_trusted_else_warns_with_the_command():
    plan, ops = host_ops(FIREWALLD, running=True)
    assert [(o.kind, o.zone) for o in ops] == [("firewalld_add", "trusted")] * 3
    assert ops[0].describe() == f"firewall-cmd --zone=trusted --add-interface={ops[0].interface}"
    assert ops[0].inverse() == O.FirewalldRemove(hostfw.UNIT, "trusted", ops[0].interface)
    plan, ops = host_ops(FIREWALLD)
    assert ops == []
    (warning,) = [w for w in plan.warnings if "firewalld" in w]
    assert "firewalld does not run" in warning and "firewall-cmd --zone=trusted --add-interface=cn0" in warning


def test_a_native_nft_forward_drop_is_warned_about_with_the_rules_to_add():
    plan, ops = host_ops(NATIVE)
    assert ops == []
    (warning,) = plan.warnings
    assert "inet filter forward" in warning and "nft insert rule inet filter forward iifname cn0 accept" in warning


def test_other_tools_bridges_get_no_new_connections_from_ours():
    from compose_net import firewall

    links = {"docker0": 0, "br-0123456789ab": 0, "br-lan": 0, "virbr0": 0, "eth0": 0, "cn0": 0}
    p = project("iso", [svc("a", att("front")), svc("b", att("back"))],
                [net("front", "iso"), net("back", "iso", internal=True)])
    s = summary(p, HostFacts(links=links))
    assert s.foreign_bridges == ("br-0123456789ab", "docker0", "virbr0")  # not a LAN bridge, not ours
    words = [w for g, w in firewall.table(s).rules if "other tools" in w]
    assert words == ["iso_front -> other tools' container bridges (br-0123456789ab, docker0, virbr0), "
                     "new connections: dropped"]
    assert not [w for g, w in firewall.table(summary(p, HostFacts())).rules if "other tools" in w]
