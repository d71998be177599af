"""Stage 1: YAML 1.2 scalars, the line index, duplicate keys, merge keys, hostile input."""

import time

import pytest

from compose_net.errors import ConfigError, ConfigErrors
from compose_net.keypath import locate, parse_path
from compose_net.loader.source import MAX_FILE_BYTES, decode, load_source, parse, read_text


def one(text):
    return load_source("c.yml", text=text)[0]


def test_yaml_12_core_scalars_as_compose_reads_them():
    data = one("""
a: 2222:22
b: [on, off, yes, no, y, n]
c: [true, True, TRUE, false, False, FALSE]
d: [0x1f, 0o17, 017, 12, -3, 1.5, 1e3]
e: 2001-12-14
f: [~, null, NULL]
g: 1:30:00
h: "true"
i: !!str 80
j: =
""").data
    assert data["a"] == "2222:22"
    assert data["b"] == ["on", "off", "yes", "no", "y", "n"]
    assert data["c"] == [True, True, True, False, False, False]
    assert data["d"] == [31, 15, 17, 12, -3, 1.5, 1000.0]
    assert data["e"] == "2001-12-14"
    assert data["f"] == [None, None, None]
    assert data["g"] == "1:30:00"
    assert data["h"] == "true" and data["i"] == "80" and data["j"] == "="


def test_huge_numbers_stay_text():
    data = one("a: " + "9" * 5000 + "\nb: 0x" + "f" * 5000 + "\nc: 18446744073709551616\nd: -9223372036854775808\n").data
    assert data["a"] == "9" * 5000 and data["b"] == "0x" + "f" * 5000
    assert data["c"] == "18446744073709551616" and data["d"] == -(2**63)


def test_keys_are_the_text_as_written():
    data = one("1e3: a\non: b\n~: c\n0x10: d\n'q': e\n").data
    assert list(data) == ["1e3", "on", "~", "0x10", "q"]


def test_every_key_and_item_has_a_line():
    src = one("""services:
  web:
    networks:
      - front
      - back
    ports:
      - "80:80"
      - target: 81
        published: 8081
""")
    def line(path):
        return locate(src.loc, src.data, parse_path(path))[1]
    assert line("services") == 1
    assert line("services.web") == 2
    assert line("services.web.networks[1]") == 5
    # the map form of a list entry still finds the list item
    assert line("services.web.networks.back.ipv4_address") == 5
    assert line("services.web.ports[1].published") == 9
    # an unknown path falls back to its nearest ancestor
    assert line("services.web.ports[7]") == 6
    assert line("services.nope.x") == 1


def test_duplicate_keys_name_both_lines():
    with pytest.raises(ConfigError) as e:
        one("services:\n  web: {}\n  db: {}\n  web: {}\n")
    assert e.value.line == 4 and e.value.keypath == "services.web"
    assert e.value.message == 'duplicate key "web" (first defined at line 2)'


def test_every_duplicate_key_is_reported():
    with pytest.raises(ConfigErrors) as e:
        one("services:\n  web:\n    image: a\n    image: b\n  web: {}\nnetworks:\n  n: {}\n  n: {}\n")
    assert [(x.line, x.keypath) for x in e.value.errors] == [
        (4, "services.web.image"), (5, "services.web"), (8, "networks.n")]


def test_merge_keys_and_explicit_keys_win():
    data = one("""
x-base: &base {image: a, restart: always, dns: [1.1.1.1]}
x-more: &more {image: b, tty: true}
services:
  web:
    <<: [*base, *more]
    image: mine
""").data
    assert data["services"]["web"] == {"image": "mine", "restart": "always", "dns": ["1.1.1.1"], "tty": True}


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "top level must be a mapping"),
    ("", "empty compose file"),
    ("# only a comment\n", "empty compose file"),
    ("a: [", "invalid YAML"),
    ("a: *nope", "unknown alias"),
    ("a: !!python/object:os.system x", "unsupported YAML tag"),
    ("? [a]\n: 1", "mapping key must be a plain value"),
    ("a: !!int abc", "not a valid !!int"),
])
def test_malformed_input_is_a_config_error(text, message):
    with pytest.raises(ConfigError) as e:
        load_source("c.yml", text=text)
    assert message in str(e.value)
    assert e.value.file == "c.yml"


def _timed(fn):
    start = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        fn()
    assert time.perf_counter() - start < 2.0
    return e.value


def test_alias_bomb_fails_fast():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    err = _timed(lambda: load_source("bomb.yml", text="\n".join(lines)))
    assert "alias" in err.message


@pytest.mark.parametrize("text", [
    "a: " + "[" * 50000 + "]" * 50000,
    "a: " + "{b: " * 50000 + "1" + "}" * 50000,
    "".join(" " * i + "k:\n" for i in range(3000)),
])
def test_deep_nesting_fails_cleanly(text):
    err = _timed(lambda: load_source("deep.yml", text=text))
    assert "nesting" in err.message
    assert len(str(err)) < 300


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "bin.yml"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 100)
    err = _timed(lambda: read_text(str(path), "bin.yml"))
    assert "binary" in err.message and err.file == "bin.yml"


def test_invalid_utf8_is_refused():
    err = _timed(lambda: decode(b"services:\n  web: \xff\xfe\n", "c.yml"))
    assert err.line == 2 and "UTF-8" in err.message


def test_file_over_10_mib_is_refused(tmp_path):
    path = tmp_path / "big.yml"
    path.write_bytes(b"x: " + b"a" * (11 * 1024 * 1024))
    err = _timed(lambda: read_text(str(path), "big.yml"))
    assert "10 MiB" in err.message
    assert MAX_FILE_BYTES == 10 * 1024 * 1024


def test_several_documents_are_all_returned():
    docs = parse("a: 1\n---\nb: 2\n", "c.yml")
    assert [d for d, _ in docs] == [{"a": 1}, {"b": 2}]


def _bomb(levels, width):
    lines = ['x-a: &a [' + ",".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"x-{cur}: &{cur} [" + ",".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\nservices: {web: {image: x}}\n"


@pytest.mark.parametrize("content, message", [
    (_bomb(10, 9).encode(), "alias bomb"),
    (("services: " + "[" * 50000 + "]" * 50000).encode(), "nesting"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64, "binary"),
    (b"services: {}\nx-pad: " + b"a" * (11 * 1024 * 1024), "10 MiB"),
])
def test_hostile_files_through_load(tmp_path, content, message):
    from compose_net.errors import ConfigErrors
    from compose_net.loader import LoadOptions, load

    (tmp_path / "hostile.yml").write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(ConfigErrors) as e:
        load(LoadOptions(files=("hostile.yml",), cwd=str(tmp_path), environ={}, project_name="h"))
    assert time.perf_counter() - start < 2.0
    assert message in str(e.value) and str(e.value).startswith("hostile.yml")


def test_alias_expansion_under_the_limit_still_loads_quickly(tmp_path):
    from compose_net.loader import LoadOptions, load

    (tmp_path / "c.yml").write_text(_bomb(5, 9))  # ~66,000 nodes through aliases
    start = time.perf_counter()
    result = load(LoadOptions(files=("c.yml",), cwd=str(tmp_path), environ={}, project_name="h"))
    assert time.perf_counter() - start < 2.0
    assert list(result.project.services) == ["web"]


def test_too_many_nodes_fail_fast(tmp_path):
    from compose_net.errors import ConfigErrors
    from compose_net.loader import LoadOptions, load

    (tmp_path / "c.yml").write_text("services:\n" + "".join(f"  s{i}: {{image: x}}\n" for i in range(120_000)))
    start = time.perf_counter()
    with pytest.raises(ConfigErrors, match="YAML nodes"):
        load(LoadOptions(files=("c.yml",), cwd=str(tmp_path), environ={}, project_name="h"))
    assert time.perf_counter() - start < 5.0
