"""Every file in tests/data/invalid holds one mistake; NAME.expected holds the exact error lines.

Each expected line must name the file, a line number and a key path (`NAME.yml:LINE: key.path:`).
"""

import re
from pathlib import Path

import pytest

from compose_net.errors import ConfigError, ConfigErrors
from compose_net.loader import LoadOptions, load

DATA = Path(__file__).resolve().parent.parent / "data" / "invalid"
CASES = sorted(p.stem for p in DATA.glob("*.yml"))


def test_the_corpus_is_complete():
    assert len(CASES) >= 45
    for name in CASES:
        assert (DATA / f"{name}.expected").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_invalid_file_gives_its_expected_errors(name):
    expected = (DATA / f"{name}.expected").read_text().splitlines()
    assert expected, name
    for line in expected:
        m = re.match(rf"^{re.escape(name)}\.yml:(\d+): (\S[^:]*): \S", line)
        assert m and int(m.group(1)) >= 1, f"expected line must name file, line and key path: {line}"
    with pytest.raises((ConfigError, ConfigErrors)) as e:
        load(LoadOptions(files=(f"{name}.yml",), cwd=str(DATA), environ={}, project_name="invalid"))
    errors = e.value.errors if isinstance(e.value, ConfigErrors) else [e.value]
    assert [str(x) for x in errors] == expected
    assert e.value.exit_status == 2
