import json

from compose_net.model import PortMapping
from compose_net.plan import ops as O
from compose_net.plan.planner import plan_up
from compose_net.plan.render import render_json
from compose_net.probe import HostFacts
from planning_projects import att, net, pool, project, svc, three_tier


def rich_project():
    return project("p", [
        svc("a", att("v6", ipv6_address="fd00:dead:beef::10"), att("o"), ports=(PortMapping(target=80, target_end=80),)),
        svc("m", att("lan")),
        svc("n", network_mode="none"),
    ], [net("v6", "p", enable_ipv6=True, ipam_pools=(pool("172.30.0.0/24"), pool("fd00:dead:beef::/64"))),
        net("o", "p", driver="overlay"),
        net("lan", "p", driver="macvlan", driver_opts={"parent": "eth0.10"})])


def test_every_planned_op_survives_json():
    for p in (three_tier(), rich_project()):
        plan = plan_up(p, HostFacts(links={"eth0": 0}))
        for op in plan.ops:
            back = O.op_from_json(json.loads(op.to_json_text()))
            assert back == op and type(back) is type(op), op
            assert back.details() == op.details()  # the firewall's words too (not identity)
        listed = json.loads(render_json(plan))
        assert [O.op_from_json(d) for d in listed] == list(plan.ops)
        assert all(isinstance(d["op"], str) for d in listed)


def test_every_creating_op_has_an_inverse_and_teardown_of_teardown_is_empty():
    plan = plan_up(rich_project(), HostFacts(links={"eth0": 0}))
    for op in plan.ops:
        if op.creates():
            assert op.inverse() is not None, op
    down = O.teardown(plan.ops)
    assert O.teardown(down) == ()
    kinds = {o.kind for o in down}
    assert {"netns_delete", "link_group_delete", "file_remove", "nft_delete", "dns_stop"} <= kinds
    # the VLAN parent, created in the host namespace, goes with the project's link group
    (g,) = [o for o in down if o.kind == "link_group_delete"]
    assert "eth0.10" in g.names
