import json
import re
import shutil
import subprocess

import pytest

from compose_net.plan import ops as O
from compose_net.plan.planner import plan_up
from compose_net.plan.render import render_down_text, render_graph, render_json, render_text
from planning_projects import three_tier


def test_text_header_numbering_grouping_and_notes():
    plan = plan_up(three_tier())
    text = render_text(plan)
    lines = text.splitlines()
    assert lines[0] == f"project shop: 2 networks, 3 containers, {len(plan.ops)} ops"
    numbered = [l for l in lines if re.match(r"^\s+\d+  ", l)]
    assert [int(l.split()[0]) for l in numbered] == list(range(1, len(plan.ops) + 1))
    for line, op in zip(numbered, plan.ops):
        assert line.endswith(op.describe())
    assert "network shop_front (bridge; 172.18.0.0/16, gateway 172.18.0.1)" in lines
    assert "network shop_back (bridge; internal; 172.19.0.0/16, gateway 172.19.0.1)" in lines
    assert "container shop-web-1" in lines
    veth = next(l for l in numbered if "<-> eth0 in shop-web-1" in l)
    assert re.search(r"veth veth[0-9a-f]{8} <-> eth0 in shop-web-1, master cn-[0-9a-f]{8}", veth)
    assert "notes:" in lines and any("next free /16 of pool 172.18.0.0/16" in l for l in lines)


def test_the_firewall_op_lists_its_rules_in_words_grouped_under_it():
    plan = plan_up(three_tier())
    lines = render_text(plan).splitlines()
    (nft,) = [op for op in plan.ops if op.kind == "nft_apply"]
    at = next(i for i, l in enumerate(lines) if l.endswith(nft.describe()))
    block = []
    for line in lines[at + 1:]:
        if not line.startswith(" " * 8):
            break
        block.append(line.strip())
    assert block[0] == "published ports:"
    assert block[1] == "0.0.0.0:8080 -> shop-web-1 172.18.0.2:80/tcp"
    for heading in ("isolation:", "internal:", "masquerade:", "hairpin:", "localhost guard:"):
        assert heading in block
    assert any(line.startswith("shop_back internal: no way out of cn-") for line in block)
    # one line per rule, each also the rule's comment in the document
    comments = [i["add"]["rule"]["comment"] for i in nft.ruleset["nftables"] if "rule" in i.get("add", {})]
    words = [l for l in block if not l.endswith(":")]
    assert len(words) == len(comments) == int(nft.describe().split("(")[1].split()[0])
    assert sorted(comments) == sorted(f"{g}: {w}" for g, w in nft.rules)


def test_json_is_a_list_of_ops_numbered_by_position():
    plan = plan_up(three_tier())
    data = json.loads(render_json(plan))
    assert isinstance(data, list) and len(data) == len(plan.ops)
    assert [d["op"] for d in data] == [o.kind for o in plan.ops]
    names = json.dumps(data)
    assert "shop_front" in names and "shop_back" in names
    (state,) = [d for d in data if d["op"] == "file_write" and d["unit"] == "state"]
    web = json.loads(state["content"])["containers"][2]
    assert web["name"] == "shop-web-1" and web["ports"][0]["published"] == 8080


def test_down_text():
    plan = plan_up(three_tier())
    down = O.teardown(plan.ops)
    text = render_down_text("shop", down)
    assert text.splitlines()[0] == f"project shop: down, {len(down)} ops"
    assert "delete link group" in text and "delete netns shop-web-1" in text


def test_graph_mermaid_and_dot_show_subnets_addresses_ports():
    p = three_tier()
    plan = plan_up(p)
    m = render_graph(p, plan, "mermaid")
    assert m.startswith("graph LR")
    assert "172.18.0.0/16 gw 172.18.0.1" in m and "eth0 172.18.0.2/16" in m and "8080->80/tcp" in m
    d = render_graph(p, plan, "dot")
    assert d.startswith('graph "shop" {') and d.rstrip().endswith("}")
    assert "c_shop_web_1 -- net_shop_front" in d and "8080->80/tcp" in d and "internal" in d


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_output_is_valid_graphviz():
    p = three_tier()
    out = subprocess.run(["dot", "-Tsvg"], input=render_graph(p, plan_up(p), "dot"), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "<svg" in out.stdout and "c_shop_web_1" in out.stdout and "172.18.0.2/16" in out.stdout


def test_graph_node_ids_stay_distinct_when_names_differ_only_in_punctuation():
    from planning_projects import att, net, project, svc

    p = project("p", [svc("a-b", att("n-1")), svc("a_b", att("n_1"))], [net("n-1", "p"), net("n_1", "p")])
    for fmt in ("mermaid", "dot"):
        out = render_graph(p, plan_up(p), fmt)
        ids = set(re.findall(r"\b(?:c|net)_[A-Za-z0-9_]+", out))
        # two containers and two networks, each its own node
        assert len({i for i in ids if i.startswith("c_")}) == 2, out
        assert len({i for i in ids if i.startswith("net_")}) == 2, out
        edges = [l for l in out.splitlines() if ("---" in l if fmt == "mermaid" else " -- " in l)]
        assert len(edges) == 2 and len({tuple(re.findall(r"\b(?:c|net)_\w+", e)) for e in edges}) == 2
