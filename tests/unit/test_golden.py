"""Golden dry-run plans of the examples: `examples/NAME/plan.txt` and `plan.json` are what
`up --dry-run` prints for NAME on an empty host. Regenerate with `UPDATE_GOLDEN=1`.

The firewall's rules are part of what a reviewer reads: plan.txt has them in words under the nft
op, plan.json the exact document (checked here to be `firewall.ruleset(summary)` of the plan's own
summary), so a change of the rules shows in these files and is reviewed with them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from compose_net.plan.planner import plan_up
from compose_net.plan.render import render_json, render_text
from compose_net.probe import HostFacts
from compose_net.summary import from_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/compose.yml"))

try:
    from compose_net.loader import LoadOptions, load
except ImportError:  # the loader is written in parallel; until it lands this test waits for it
    load = None


def planned(name: str):
    directory = ROOT / "examples" / name
    result = load(LoadOptions(files=(str(directory / "compose.yml"),), environ={}))
    # paths relative to the checkout, so the golden files do not depend on where it lives
    project = dataclasses.replace(result.project, working_dir=f"examples/{name}",
                                  files=tuple(f"examples/{name}/{Path(f).name}" for f in result.project.files))
    return plan_up(project, HostFacts())


def golden_view(plan):
    """The plan, after checking that its firewall document is that of its own summary."""
    from compose_net import firewall

    summary = next(from_text(o.content) for o in plan.ops if o.kind == "file_write" and o.unit == "state")
    (nft,) = [op for op in plan.ops if op.kind == "nft_apply"]
    assert nft.ruleset == firewall.ruleset(summary)
    assert nft.rules == firewall.table(summary).rules
    return plan


def test_there_are_at_least_five_examples():
    assert {"three-tier", "internal-db", "static-ipv6", "replicas-lb", "macvlan"} <= set(EXAMPLES)


@pytest.mark.skipif(load is None, reason="compose_net.loader.load is not there yet")
@pytest.mark.parametrize("name", EXAMPLES)
def test_golden_plan(name):
    plan = golden_view(planned(name))
    text, data = render_text(plan), render_json(plan)
    directory = ROOT / "examples" / name
    if os.environ.get("UPDATE_GOLDEN"):
        (directory / "plan.txt").write_text(text)
        (directory / "plan.json").write_text(data)
    assert (directory / "plan.txt").read_text() == text
    assert json.loads((directory / "plan.json").read_text()) == json.loads(data)


@pytest.mark.skipif(load is None, reason="compose_net.loader.load is not there yet")
def test_golden_plans_name_every_network_static_address_port_and_bridge():
    plan = planned("static-ipv6")
    text = render_json(plan)
    for needle in ("dualstack_lan", "dualstack_mgmt", "10.123.0.10", "fd00:dead:beef::10", "dsbr0"):
        assert needle in text
    text = render_json(planned("three-tier"))
    for needle in ("shop_frontend", "shop_backend", "8080"):
        assert needle in text
