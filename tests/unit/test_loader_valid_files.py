"""Every file in tests/data/valid loads without errors and its `config` output reads back the same."""

from pathlib import Path

import pytest

from compose_net.loader import LoadOptions, load
from compose_net.loader.config_output import render

DATA = Path(__file__).resolve().parent.parent / "data" / "valid"
CASES = sorted(p.name for p in DATA.glob("*.yml"))


def test_there_are_valid_files():
    assert len(CASES) >= 6


@pytest.mark.parametrize("name", CASES)
def test_valid_file_loads_and_round_trips(name, tmp_path):
    result = load(LoadOptions(files=(name,), cwd=str(DATA), environ={}, project_name="valid"))
    assert result.project.containers
    text = render(result, "yaml")
    (tmp_path / "compose.yml").write_text(text)
    again = load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="valid"))
    assert render(again, "yaml") == text
    assert sorted(again.project.containers, key=repr) == sorted(result.project.containers, key=repr)


def test_yaml_scalars_stay_strings():
    config = load(LoadOptions(files=("yaml-scalars.yml",), cwd=str(DATA), environ={}, project_name="v")).config
    env = config["services"]["ssh"]["environment"]
    assert env == {"ON": "on", "YES": "yes", "NO": "no", "TIME": "1:30:00", "DATE": "2001-12-14",
                   "OCTAL_LOOKING": "777", "FLOAT": "1.5"}
    assert [p["published"] for p in config["services"]["ssh"]["ports"]] == ["2222", "8022"]


def test_legacy_forms():
    result = load(LoadOptions(files=("legacy-forms.yml",), cwd=str(DATA), environ={"C": "from-shell"},
                              project_name="v"))
    app = result.project.services["app"]
    assert [(link.service, link.alias) for link in app.links] == [("db", "db"), ("db", "database")]
    assert result.config["services"]["app"]["environment"] == {"A": "1", "B": "", "C": "from-shell"}
    assert [(h.hostname, h.address) for h in app.extra_hosts] == [("gw", "host-gateway"), ("v6", "fe80::1")]
    assert result.project.networks["outside"].name == "pre-existing"
    assert result.project.networks["outside"].external


def test_network_modes():
    project = load(LoadOptions(files=("network-modes.yml",), cwd=str(DATA), environ={}, project_name="v")).project
    modes = {name: svc.network_mode for name, svc in project.services.items()}
    assert modes == {"base": None, "sidecar": "service:base", "hosty": "host", "isolated": "none",
                     "legacy": "bridge", "joined": "container:some-other-container"}
    assert set(project.networks) == {"default"}
