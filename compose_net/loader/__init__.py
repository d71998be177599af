"""The loader: compose files → a checked `model.Project`, in stages that each work on plain data.

    source (YAML → data + Loc tree) → interpolate (with dotenv) → validate (schema, per file)
    → include, extends → merge (-f files in order) → normalize → checks → build (model)

`load(LoadOptions(...))` runs them all and raises `ConfigErrors` carrying every problem of the
first stage that found any (a file that does not parse cannot be checked further).
"""

from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from compose_net.errors import ConfigError, ConfigErrors, ConfigWarning, Where
from compose_net.loader import inputs
from compose_net.model import Project

DISCOVERY_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
_OVERRIDES = {
    "compose.yaml": ("compose.override.yaml", "compose.override.yml"),
    "compose.yml": ("compose.override.yml", "compose.override.yaml"),
    "docker-compose.yaml": ("docker-compose.override.yaml", "docker-compose.override.yml"),
    "docker-compose.yml": ("docker-compose.override.yml", "docker-compose.override.yaml"),
}
_PROJECT_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class LoadOptions:
    files: tuple[str, ...] = ()  # -f, in order; empty: COMPOSE_FILE, then discovery
    project_name: Optional[str] = None  # -p
    project_directory: Optional[str] = None  # --project-directory
    env_files: tuple[str, ...] = ()  # --env-file
    profiles: tuple[str, ...] = ()  # --profile
    # `up SERVICE...`: these and what they depend on are enabled whatever their profiles
    services: tuple[str, ...] = ()
    environ: Optional[Mapping[str, str]] = None  # default os.environ
    cwd: Optional[str] = None  # where discovery starts (default os.getcwd())


@dataclass(frozen=True)
class LoadResult:
    project: Project
    config: dict  # the normalized plain data (what `config` prints)
    warnings: tuple[ConfigWarning, ...]


def normalize_project_name(name: str) -> str:
    """Compose's normalization of `name:` and directory names."""
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return name.lstrip("_-")


def check_project_name(name: str, source: str = "-p") -> str:
    if not _PROJECT_NAME_RE.fullmatch(name or ""):  # `$` alone would let a trailing newline in
        raise ConfigError("(command line)", 0, source,
                          f'invalid project name "{name}": use lowercase letters, digits, "_" and "-", '
                          "starting with a letter or digit")
    return name


def _display(path: str, cwd: str) -> str:
    rel = os.path.relpath(path, cwd)
    return rel if not rel.startswith(".." + os.sep + "..") else path


def discover(cwd: str) -> list[tuple[str, str]]:
    """(path, display) of the compose file (and its override) found in cwd or a parent."""
    directory = os.path.abspath(cwd)
    while True:
        for name in DISCOVERY_NAMES:
            path = os.path.join(directory, name)
            inputs.note(path)
            if os.path.isfile(path):
                found = [(path, _display(path, cwd))]
                for override in _OVERRIDES[name]:
                    opath = os.path.join(directory, override)
                    inputs.note(opath)
                    if os.path.isfile(opath):
                        found.append((opath, _display(opath, cwd)))
                        break
                return found
        parent = os.path.dirname(directory)
        if parent == directory:
            raise ConfigError(DISCOVERY_NAMES[0], 0, "",
                              "no compose file found in this directory or its parents "
                              f"(looked for {', '.join(DISCOVERY_NAMES)})")
        directory = parent


def _read_env(paths: list[tuple[str, str]], environ: Mapping[str, str], required: bool) -> dict[str, str]:
    from compose_net.loader.dotenv import read_dotenv

    values: dict[str, str] = {}
    for path, display in paths:
        inputs.note(path)
        if not required and not os.path.isfile(path):
            continue
        values.update(read_dotenv(path, display, {**values, **environ}))
    return values


def _collect(errors: list[ConfigError], exc: Exception) -> None:
    if isinstance(exc, ConfigErrors):
        errors.extend(exc.errors)
    elif isinstance(exc, ConfigError):
        errors.append(exc)
    else:  # pragma: no cover - defensive
        raise exc


def load(opts: LoadOptions) -> LoadResult:
    """Load, validate and check the project. Raises ConfigErrors (every problem) or ConfigError."""
    # Loading allocates many small objects that all stay alive: generational GC passes would
    # only rescan them (about a third of the time for large files).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(opts)
    except RecursionError:
        raise ConfigError("(input)", 0, "", "input nests too deeply") from None
    finally:
        if gc_was_enabled:
            gc.enable()


def _load(opts: LoadOptions) -> LoadResult:
    from compose_net.loader import build, checks, extends, include, interpolate, merge, normalize, source, validate

    environ = dict(os.environ if opts.environ is None else opts.environ)
    cwd = os.path.abspath(opts.cwd or os.getcwd())
    if opts.project_name is not None:
        check_project_name(opts.project_name)

    env_paths = [(os.path.join(cwd, f) if not os.path.isabs(f) else f, f) for f in opts.env_files]
    pre_dir = os.path.join(cwd, opts.project_directory) if opts.project_directory else cwd
    if env_paths:
        dotenv_values = _read_env(env_paths, environ, required=True)
    else:
        dotenv_values = _read_env([(os.path.join(pre_dir, ".env"), _display(os.path.join(pre_dir, ".env"), cwd))],
                                  environ, required=False)
    variables = {**dotenv_values, **environ}

    if opts.files:
        files = [(f if os.path.isabs(f) or f == "-" else os.path.join(cwd, f), f) for f in opts.files]
    elif variables.get("COMPOSE_FILE"):
        sep = variables.get("COMPOSE_PATH_SEPARATOR") or ":"
        files = [(f if os.path.isabs(f) else os.path.join(cwd, f), f)
                 for f in variables["COMPOSE_FILE"].split(sep) if f]
    else:
        files = discover(cwd)

    project_dir = os.path.abspath(os.path.join(cwd, opts.project_directory)) if opts.project_directory \
        else os.path.dirname(os.path.abspath(files[0][0]))
    if not env_paths and project_dir != pre_dir:
        dotenv_values = _read_env([(os.path.join(project_dir, ".env"), _display(os.path.join(project_dir, ".env"), cwd))],
                                  environ, required=False)
        variables = {**dotenv_values, **environ}

    # Stages 1-4, file by file: every file's problems are reported together.
    errors: list[ConfigError] = []
    warnings: list[ConfigWarning] = []
    parsed: list[tuple[dict, source.Loc]] = []
    # where relative paths start in each file read (by display name): the project directory for
    # the -f files, its own directory for a file `extends` or `include` pulls in
    file_dirs: dict[str, str] = {}

    def read_file(path: str, display: str, variables: Mapping[str, str]) -> list[tuple[dict, source.Loc]]:
        """Parse, interpolate and validate one file. Raises ConfigError(s)."""
        file_dirs.setdefault(display, os.path.dirname(path) if path != "-" else project_dir)
        if path == "-":
            import sys

            docs = source.load_source(path, "-", text=source.decode(sys.stdin.buffer.read(source.MAX_FILE_BYTES + 1), "-"))
        else:
            docs = source.load_source(path, display)
        out = []
        problems: list[ConfigError] = []
        for doc in docs:
            try:
                data, warns = interpolate.interpolate(doc.data, doc.loc, variables)
            except ConfigErrors as e:
                problems.extend(e.errors)
                continue
            warnings.extend(warns)
            if "version" in data and isinstance(doc.loc.children, dict):
                vloc = doc.loc.children["version"]
                warnings.append(ConfigWarning(Where(vloc.file, vloc.line, "version"),
                                              "the attribute `version` is obsolete, it will be ignored"))
            found = validate.validate(data, doc.loc)
            if found:
                problems.extend(found)
                continue
            out.append((data, doc.loc))
        if problems:
            raise ConfigErrors(problems)
        return out

    def resolve(path: str, display: str, variables: Mapping[str, str], chain: tuple[str, ...]):
        """One file's documents with their `include` and `extends` resolved."""

        def read_base(base_path: str, base_display: str):
            # its services' own `extends` are resolved by the same resolver (one cycle check)
            return merge.merge_sources(read_file(base_path, base_display, variables))

        def load_project(paths, env_files, sub_chain):
            sub_vars = {**_read_env(env_files, environ, required=True), **environ}
            docs = [doc for p, d in paths for doc in resolve(p, d, sub_vars, sub_chain)]
            return merge.merge_sources(docs)

        here = os.path.normpath(os.path.join(cwd, "-") if path == "-" else path)
        out = []
        for data, loc in read_file(path, display, variables):
            data, loc = include.resolve_include(data, loc, here, load_project, chain)
            out.append(extends.resolve_extends(data, loc, here, read_base))
        return out

    for path, display in files:
        try:
            parsed.extend(resolve(path, display, variables, ()))
        except (ConfigError, ConfigErrors) as e:
            _collect(errors, e)
    if errors:
        raise ConfigErrors(errors)

    merged, loc = merge.merge_sources(parsed)

    # Project name: -p, COMPOSE_PROJECT_NAME, `name:`, then the directory's basename.
    if opts.project_name:
        name = opts.project_name
    elif variables.get("COMPOSE_PROJECT_NAME"):
        name = check_project_name(variables["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME")
    elif isinstance(merged.get("name"), str) and merged["name"].strip():
        name = normalize_project_name(merged["name"])
        if not name:
            where = loc.children.get("name", loc) if isinstance(loc.children, dict) else loc
            raise ConfigError(where.file, where.line, "name", f'project name "{merged["name"]}" has no valid character')
    else:
        name = normalize_project_name(os.path.basename(project_dir))
        if not name:
            raise ConfigError(files[0][1], 0, "",
                              f'cannot derive a project name from directory "{os.path.basename(project_dir)}": use -p')

    profiles = normalize.active_profiles(opts.profiles, variables)
    raw_services = merged.get("services") if isinstance(merged.get("services"), dict) else {}
    unknown = [s for s in opts.services if s not in raw_services]
    if unknown:
        raise ConfigErrors([ConfigError(files[0][1], 0, f"services.{s}", f"no such service: {s}") for s in unknown])
    enabled = normalize.targeted_services(raw_services, opts.services)
    config = normalize.normalize(merged, name, profiles, variables, enabled)
    file_dirs.update({display: project_dir for _, display in files})
    problems = checks.run_checks(config, loc, merged, project_dir, file_dirs, warnings)
    if problems:
        raise ConfigErrors(problems)
    project = build.build_project(config, loc, merged, project_dir, tuple(p for p, _ in files), variables)
    return LoadResult(project=project, config=config, warnings=tuple(warnings))


__all__ = ["LoadOptions", "LoadResult", "load", "check_project_name", "normalize_project_name", "Where"]
