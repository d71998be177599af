"""`include`: other compose projects pulled into this one, each with its own variables."""

import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader import LoadOptions, load


def write(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run(tmp_path, environ=None):
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ=environ or {}, project_name="inc"))


def test_included_services_and_networks_are_added(tmp_path):
    write(tmp_path, {
        "compose.yml": "include:\n  - db/compose.yml\n  - path: [cache/a.yml, cache/b.yml]\n    env_file: cache/vars.env\n"
                       "services:\n  web:\n    image: nginx\n    networks: [dbnet]\n    depends_on: [db]\n",
        "db/compose.yml": "services:\n  db:\n    image: postgres:${PG:-16}\n    networks: [dbnet]\nnetworks:\n  dbnet: {}\n",
        "db/.env": "PG=15\n",
        "cache/a.yml": "services:\n  cache:\n    image: redis:${TAG}\n",
        "cache/b.yml": "services:\n  cache:\n    ports: ['6379:6379']\n",
        "cache/vars.env": "TAG=7\n",
    })
    result = run(tmp_path)
    services = result.config["services"]
    assert list(services) == ["web", "db", "cache"]
    assert services["db"]["image"] == "postgres:15"  # the included project's own .env
    assert services["cache"]["image"] == "redis:7" and services["cache"]["ports"][0]["target"] == 6379
    assert result.project.networks["dbnet"].name == "inc_dbnet"
    assert result.project.locate("services.db.image") == ("db/compose.yml", 3)
    assert result.project.locate("services.cache.ports[0]") == ("cache/b.yml", 3)
    # the shell environment still wins
    assert run(tmp_path, {"PG": "17"}).config["services"]["db"]["image"] == "postgres:17"


@pytest.mark.parametrize("files, message", [
    ({"compose.yml": "include: [other.yml]\nservices:\n  web: {image: a}\n",
      "other.yml": "services:\n  web: {image: b}\n"},
     'compose.yml:3: services.web: service "web" is also defined by included other.yml'),
    ({"compose.yml": "include: [a.yml]\nservices: {}\n", "a.yml": "include: [compose.yml]\n"},
     "a.yml:1: include[0]: include cycle: compose.yml -> a.yml -> compose.yml"),
    ({"compose.yml": "include: [nope.yml]\n"}, "nope.yml: no such file"),
])
def test_include_errors(tmp_path, files, message):
    write(tmp_path, files)
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path)
    assert str(e.value) == message
