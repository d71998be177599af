"""Every op kind the plan can hold has a handler in the executor's table."""

from __future__ import annotations

from compose_net.executor.apply import HANDLERS
from compose_net.plan.ops import OPS


def test_every_op_kind_has_a_handler():
    assert set(HANDLERS) == set(OPS)
