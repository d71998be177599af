"""Stage 2a: `.env` files as Compose reads them."""

import pytest

from compose_net.errors import ConfigError
from compose_net.loader.dotenv import parse_dotenv, read_dotenv


def test_compose_dotenv_rules():
    env = parse_dotenv("""
# a comment
PLAIN=value
SPACED =  spaced out  
COMMENT=abc # this is a comment
HASH=abc#not-a-comment
export EXPORTED=yes
SINGLE='literal $PLAIN \\n # kept'
DOUBLE="line1\\nline2 \\"q\\" $PLAIN"
DOLLAR="cost \\$5"
REF=${PLAIN}-x
EMPTY=
DEFAULTED=${MISSING:-fallback}
MULTI="a
b"
""", ".env")
    assert env["PLAIN"] == "value"
    assert env["SPACED"] == "spaced out"
    assert env["COMMENT"] == "abc"
    assert env["HASH"] == "abc#not-a-comment"
    assert env["EXPORTED"] == "yes"
    assert env["SINGLE"] == "literal $PLAIN \\n # kept"
    assert env["DOUBLE"] == 'line1\nline2 "q" value'
    assert env["DOLLAR"] == "cost $5"
    assert env["REF"] == "value-x"
    assert env["EMPTY"] == ""
    assert env["DEFAULTED"] == "fallback"
    assert env["MULTI"] == "a\nb"


def test_shell_environment_is_used_for_references_and_bare_keys():
    env = parse_dotenv("A=${HOME_DIR}/x\nBARE\nUNSET_BARE\n", ".env", {"HOME_DIR": "/h", "BARE": "b"})
    assert env == {"A": "/h/x", "BARE": "b"}


@pytest.mark.parametrize("text, line", [("OK=1\n1BAD=2\n", 2), ("A='open\n", 1), ('A="open\n', 1), ("A=${B\n", 1)])
def test_malformed_lines_name_file_and_line(text, line):
    with pytest.raises(ConfigError) as e:
        parse_dotenv(text, "my.env")
    assert e.value.file == "my.env" and e.value.line == line


def test_missing_env_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_dotenv(str(tmp_path / "nope.env"), "nope.env")
    assert "not found" in str(e.value)
