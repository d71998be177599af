"""Project name precedence, file discovery, COMPOSE_FILE, .env and --env-file."""

import pytest

from compose_net.errors import ConfigError, ConfigErrors
from compose_net.loader import LoadOptions, check_project_name, load, normalize_project_name

SIMPLE = "services:\n  web:\n    image: ${IMAGE:-nginx}\n"


def run(tmp_path, **kw):
    kw.setdefault("environ", {})
    kw.setdefault("cwd", str(tmp_path))
    return load(LoadOptions(**kw))


def test_name_precedence(tmp_path):
    proj = tmp_path / "My Project.Dir"
    proj.mkdir()
    (proj / "compose.yml").write_text("name: ${NAME_FROM:-From_File}\n" + SIMPLE)
    assert run(proj, project_name="cli").project.name == "cli"
    assert run(proj, environ={"COMPOSE_PROJECT_NAME": "envname"}).project.name == "envname"
    assert run(proj, environ={"NAME_FROM": "Interpolated.Name"}).project.name == "interpolatedname"
    assert run(proj).project.name == "from_file"
    (proj / "compose.yml").write_text(SIMPLE)
    assert run(proj).project.name == "myprojectdir"


def test_normalization_and_cli_validation():
    assert normalize_project_name("__My.App-1") == "myapp-1"
    assert check_project_name("ok_name-1") == "ok_name-1"
    for bad in ("Upper", "-lead", "sp ace", "", "name\n", "name\nnext"):
        with pytest.raises(ConfigError):
            check_project_name(bad)


def test_invalid_dash_p_is_an_error(tmp_path):
    (tmp_path / "compose.yml").write_text(SIMPLE)
    with pytest.raises(ConfigError, match="invalid project name"):
        run(tmp_path, project_name="Bad Name")


def test_discovery_walks_up_and_prefers_compose_yaml(tmp_path):
    (tmp_path / "compose.yaml").write_text(SIMPLE)
    (tmp_path / "docker-compose.yml").write_text("services: {other: {}}\n")
    (tmp_path / "compose.override.yaml").write_text("services:\n  web:\n    image: overridden\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    result = run(tmp_path, cwd=str(sub))
    assert list(result.project.services) == ["web"]
    assert result.config["services"]["web"]["image"] == "overridden"
    assert result.project.working_dir == str(tmp_path)


def test_compose_file_variable_and_separator(tmp_path):
    (tmp_path / "one.yml").write_text(SIMPLE)
    (tmp_path / "two.yml").write_text("services:\n  db:\n    image: pg\n")
    result = run(tmp_path, environ={"COMPOSE_FILE": "one.yml;two.yml", "COMPOSE_PATH_SEPARATOR": ";"})
    assert list(result.project.services) == ["web", "db"]


def test_missing_file_and_nothing_found(tmp_path):
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path, files=("nope.yml",))
    assert str(e.value) == "nope.yml: no such file"
    with pytest.raises(ConfigError, match="no compose file found"):
        run(tmp_path / "..", cwd=str(tmp_path))


def test_env_precedence_shell_over_dotenv_and_env_file_replaces(tmp_path):
    (tmp_path / "compose.yml").write_text(SIMPLE)
    (tmp_path / ".env").write_text("IMAGE=from-dotenv\nCOMPOSE_PROJECT_NAME=dotenvname\n")
    (tmp_path / "alt.env").write_text("IMAGE=from-alt # comment\n")
    assert run(tmp_path).config["services"]["web"]["image"] == "from-dotenv"
    assert run(tmp_path).project.name == "dotenvname"
    assert run(tmp_path, environ={"IMAGE": "shell"}).config["services"]["web"]["image"] == "shell"
    alt = run(tmp_path, env_files=("alt.env",))
    assert alt.config["services"]["web"]["image"] == "from-alt"
    assert alt.project.name != "dotenvname"  # .env was not read


def test_unset_variable_warns_with_key_path(tmp_path):
    (tmp_path / "compose.yml").write_text("services:\n  web:\n    image: $UNSET_IMAGE\n    build: .\n")
    result = run(tmp_path, project_name="w")
    assert [str(w) for w in result.warnings] == [
        'compose.yml:3: services.web.image: warning: the "UNSET_IMAGE" variable is not set, defaulting to a blank string']


def test_several_files_report_all_their_problems(tmp_path):
    (tmp_path / "a.yml").write_text("services:\n  web:\n    imag: x\n")
    (tmp_path / "b.yml").write_text("services:\n  web:\n    ports: 5\n")
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path, files=("a.yml", "b.yml"), project_name="x")
    assert [str(x) for x in e.value.errors] == [
        'a.yml:3: services.web.imag: unknown key "imag" in services.web (did you mean "image"?)',
        "b.yml:3: services.web.ports: must be a list, not the integer 5",
    ]


def test_obsolete_version_warns(tmp_path):
    (tmp_path / "compose.yml").write_text('version: "3.8"\n' + SIMPLE)
    result = run(tmp_path, project_name="v")
    assert [str(w) for w in result.warnings] == [
        "compose.yml:1: version: warning: the attribute `version` is obsolete, it will be ignored"]


def test_dash_reads_the_file_from_stdin(tmp_path, monkeypatch):
    import io
    import sys

    class FakeStdin:
        buffer = io.BytesIO(b"services:\n  web:\n    image: nginx\n    ports: [80]\n    bogus: 1\n")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    with pytest.raises(ConfigErrors) as e:
        run(tmp_path, files=("-",), project_name="s")
    assert str(e.value) == '-:5: services.web.bogus: unknown key "bogus" in services.web'
