"""Stage 2b: interpolation of values, never keys."""

import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader.interpolate import TemplateError, interpolate, substitute
from compose_net.loader.source import load_source

ENV = {"SET": "val", "EMPTY": "", "PORT": "8080", "NESTED": "inner"}


def sub(text, env=ENV):
    unset = []
    return substitute(text, env.get, unset.append), unset


@pytest.mark.parametrize("text, expected", [
    ("$SET", "val"), ("${SET}", "val"), ("a${SET}b", "avalb"), ("$SET-x", "val-x"),
    ("${UNSET:-d}", "d"), ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""), ("${UNSET-d}", "d"), ("${SET:-d}", "val"),
    ("${SET:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""),
    ("${UNSET:-${NESTED}}", "inner"), ("${UNSET:-${ALSO:-deep}}", "deep"), ("${UNSET:-a}b}", "ab}"),
    ("$$SET", "$SET"), ("$${SET}", "${SET}"), ("100$", "100$"), ("a $ b", "a $ b"),
    ("${SET:?must}", "val"), ("${PORT}:80", "8080:80"),
])
def test_expressions(text, expected):
    assert sub(text)[0] == expected


def test_unset_reports_the_name():
    value, unset = sub("x${NOPE}y$ALSO")
    assert value == "xy" and unset == ["NOPE", "ALSO"]


@pytest.mark.parametrize("text, message", [
    ("${UNSET:?please set it}", "required variable UNSET is missing a value: please set it"),
    ("${EMPTY:?no empty}", "required variable EMPTY is missing a value: no empty"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${FOO", "missing closing brace"),
    ("${}", "not a variable name"),
    ("${1A}", "not a variable name"),
    ("${SET!x}", "unexpected"),
])
def test_errors(text, message):
    with pytest.raises(TemplateError, match=message.replace("?", r"\?")):
        sub(text)


def test_values_only_with_warnings_and_errors_at_key_paths():
    src = load_source("c.yml", text="""services:
  $SET:
    image: ${IMAGE}
    ports: ["${PORT}:80"]
    environment: {KEEP: "$$HOME"}
""")[0]
    data, warnings = interpolate(src.data, src.loc, ENV)
    assert "$SET" in data["services"]  # keys are never interpolated
    svc = data["services"]["$SET"]
    assert svc["ports"] == ["8080:80"] and svc["image"] == "" and svc["environment"]["KEEP"] == "$HOME"
    assert [str(w) for w in warnings] == [
        'c.yml:3: services.$SET.image: warning: the "IMAGE" variable is not set, defaulting to a blank string']
    # the parsed data is untouched (aliases may share it)
    assert src.data["services"]["$SET"]["image"] == "${IMAGE}"

    bad = load_source("c.yml", text="a: ${X:?need X}\nb:\n  - ${Y\n")[0]
    with pytest.raises(ConfigErrors) as e:
        interpolate(bad.data, bad.loc, {})
    assert [str(x) for x in e.value.errors] == [
        "c.yml:1: a: required variable X is missing a value: need X",
        'c.yml:3: b[0]: invalid interpolation format in "${Y": missing closing brace',
    ]


def test_hostile_expressions_fail_fast():
    import time

    start = time.perf_counter()
    with pytest.raises(TemplateError, match="nested more than"):
        sub("${A:-" * 50000 + "x" + "}" * 50000)
    with pytest.raises(TemplateError, match="missing closing brace"):
        sub("${A:-" + "x" * 1_000_000)
    assert sub("${UNSET:-" + "y" * 5_000_000 + "}")[0] == "y" * 5_000_000
    assert time.perf_counter() - start < 2.0
