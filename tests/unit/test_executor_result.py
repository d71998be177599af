"""What `up` says about its outcome (the CLI's last line)."""

from compose_net.executor import UpResult


def test_an_edit_counts_networks_and_containers_only():
    result = UpResult("p", True, created=("network:p_m", "container:p-b-1", "dns"),
                      recreated=("state", "firewall", "host"), removed=("container:p-c-1",), updated=True)
    assert result.message == "is up, updated: 2 created, 1 removed"


def test_an_edit_of_in_place_units_alone():
    result = UpResult("p", True, recreated=("state", "firewall"), updated=True)
    assert result.message == "is up, updated"


def test_unchanged_and_fresh():
    assert UpResult("p", False).message == "is already up: nothing to change"
    assert UpResult("p", True, created=("network:p_n",)).message == "is up"
