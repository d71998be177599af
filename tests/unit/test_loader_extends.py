"""`extends`: a service built on another one, from this file or another file."""

import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader import LoadOptions, load

BASE = """\
services:
  common:
    image: alpine
    ports: ["80:80"]
    networks: [front]
    environment: {A: "1"}
  chained:
    extends: common
    environment: {B: "2"}
"""


def run(tmp_path, text, files=("compose.yml",)):
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "base.yml").write_text(BASE)
    (tmp_path / "compose.yml").write_text(text)
    return load(LoadOptions(files=files, cwd=str(tmp_path), environ={}, project_name="e"))


def test_extends_from_another_file_and_chained(tmp_path):
    result = run(tmp_path, """\
services:
  web:
    extends:
      file: lib/base.yml
      service: chained
    ports: ["81:81"]
    environment: {A: override}
  worker:
    extends: web
    ports: !reset []
networks:
  front: {}
""")
    web = result.config["services"]["web"]
    assert web["image"] == "alpine"
    assert [p["target"] for p in web["ports"]] == [80, 81]
    assert web["environment"] == {"A": "override", "B": "2"}
    assert web["networks"] == {"front": None}
    assert "extends" not in web
    worker = result.config["services"]["worker"]
    assert "ports" not in worker and worker["environment"] == {"A": "override", "B": "2"}
    # lines point at the file that wrote each value
    assert result.project.locate("services.web.ports[0]") == ("lib/base.yml", 4)
    assert result.project.locate("services.web.ports[1]") == ("compose.yml", 6)
    assert result.project.locate("services.worker") == ("compose.yml", 8)


@pytest.mark.parametrize("text, message", [
    ("services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
     "compose.yml:3: services.a.extends: extends cycle: a -> b -> a"),
    ("services:\n  a:\n    extends: ghost\n",
     'compose.yml:3: services.a.extends: cannot extend undefined service "ghost"'),
    ("services:\n  a:\n    extends: {file: lib/base.yml, service: nope}\n",
     'compose.yml:3: services.a.extends: cannot extend undefined service "nope" in "lib/base.yml"'),
    ("services:\n  a:\n    extends: {file: missing.yml, service: x}\n", "missing.yml: no such file"),
])
def test_extends_errors(tmp_path, text, message):
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path, text)
    assert str(e.value) == message


def test_cycle_through_a_file_naming_itself(tmp_path):
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path, "services:\n  a:\n    extends: {file: compose.yml, service: b}\n"
                      "  b:\n    extends: {file: compose.yml, service: a}\n")
    assert str(e.value) == "compose.yml:3: services.a.extends: extends cycle: a -> b -> a"
