"""The command line: argparse verbs, the only module that prints or chooses an exit status.

Exit status: 0 ok, 2 bad input (every problem printed as FILE:LINE: key.path: message, nothing
else done), 1 a runtime failure (the kernel or the host refused something). Imports are lazy:
a command pays only for the modules it uses (the five runtime dependencies alone take most of a
second to import here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Optional, Sequence

from compose_net.errors import ComposeNetError, ConfigError, ConfigErrors

PROJECT_NAME_HELP = "project name (default: COMPOSE_PROJECT_NAME, the file's name:, the directory)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compose-net",
        description="Build a Compose project's networking from plain Linux kernel objects.",
    )
    _global_options(p, None)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # `compose-net dns -p NAME` and `compose-net down -p NAME` work too, as docker's habits go.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add_parser(*a, parents=[common], **kw)  # type: ignore[method-assign]

    c = sub.add_parser("config", help="print the normalized, interpolated, validated model")
    c.add_argument("--format", choices=("yaml", "json"), default="yaml")
    c.add_argument("-q", "--quiet", action="store_true", help="only validate")
    c.add_argument("--services", action="store_true", help="print the service names, one per line")
    c.add_argument("--networks", action="store_true", help="print the network keys, one per line")

    u = sub.add_parser("up", help="create the project's networking")
    u.add_argument("services", nargs="*", metavar="SERVICE", help="only these services and their dependencies")
    u.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    u.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    _progress_flags(u)

    d = sub.add_parser("down", help="remove everything up created (from the recorded state)")
    d.add_argument("--dry-run", action="store_true", help="print what would be removed")
    d.add_argument("--json", action="store_true", help="with --dry-run: as JSON")
    _progress_flags(d)

    ps = sub.add_parser("ps", help="containers, namespaces, interfaces and addresses")
    ps.add_argument("--format", choices=("table", "json"), default="table")

    ls = sub.add_parser("ls", help="projects that are up")
    ls.add_argument("--format", choices=("table", "json"), default="table")

    n = sub.add_parser("network", help="manage networks")
    nsub = n.add_subparsers(dest="network_command", metavar="COMMAND")
    nsub.required = True
    nls = nsub.add_parser("ls", help="list networks")
    nls.add_argument("--format", choices=("table", "json"), default="table")
    ni = nsub.add_parser("inspect", help="show networks as `docker network inspect` does")
    ni.add_argument("names", nargs="+", metavar="NAME")
    nc = nsub.add_parser("create", help="create a network other projects can use as external")
    nc.add_argument("name", metavar="NAME")
    nc.add_argument("--subnet")
    nc.add_argument("--gateway")
    nc.add_argument("--internal", action="store_true")
    nc.add_argument("-d", "--driver", default="bridge")
    nr = nsub.add_parser("rm", help="remove networks made by `network create`")
    nr.add_argument("names", nargs="+", metavar="NAME")
    nsub.add_parser("prune", help="remove the networks made by `network create` that no container uses")
    ncon = nsub.add_parser("connect", help="connect a running container to a network")
    ncon.add_argument("--alias", action="append", default=[], metavar="A", help="a DNS name on that network")
    ncon.add_argument("--ip", metavar="ADDR", help="its IPv4 address (networks with a given subnet)")
    ncon.add_argument("--ip6", metavar="ADDR", help="its IPv6 address")
    ncon.add_argument("network", metavar="NET")
    ncon.add_argument("container", metavar="CONTAINER")
    ndis = nsub.add_parser("disconnect", help="disconnect a container from a network")
    ndis.add_argument("-f", "--force", action="store_true", help="accepted, as by docker")
    ndis.add_argument("network", metavar="NET")
    ndis.add_argument("container", metavar="CONTAINER")

    e = sub.add_parser("exec", help="run a command in a container's namespace")
    e.add_argument("--index", type=int, default=1, help="replica number (default 1)")
    e.add_argument("service", metavar="SERVICE")
    e.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")

    r = sub.add_parser("run", help="an ad-hoc container on networks, or a one-off container of a service")
    r.add_argument("--network", action="append", default=[], metavar="NET",
                   help="a network made by `network create`, a project's network (full name), host or none")
    r.add_argument("--name", help="container name (default run-<6 hex>)")
    r.add_argument("--hostname")
    r.add_argument("--alias", action="append", default=[], metavar="A")
    r.add_argument("--ip", metavar="ADDR", help="its IPv4 address on the first network")
    r.add_argument("--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER[/PROTO]")
    r.add_argument("-d", "--detach", action="store_true", help="keep the container (until `rm` or `down`)")
    r.add_argument("words", nargs=argparse.REMAINDER, metavar="[SERVICE] [-- CMD...]")
    rm = sub.add_parser("rm", help="remove containers made by `run --detach`")
    rm.add_argument("names", nargs="+", metavar="NAME")

    g = sub.add_parser("graph", help="the topology as Mermaid or Graphviz text")
    g.add_argument("--format", choices=("mermaid", "dot"), default=None)
    g.add_argument("--output", "-o", metavar="FILE", help="render to FILE.svg/.png with Graphviz dot")

    ck = sub.add_parser("check", help="exit 0 when the kernel matches the plan, 1 listing every difference")
    ck.add_argument("--json", action="store_true", help="the differences as JSON")

    r = sub.add_parser("reach", help="who reaches whom, on which ports and why (--verify: prove it live)")
    r.add_argument("source", nargs="?", metavar="FROM", help="a service, container, host or outside")
    r.add_argument("target", nargs="?", metavar="TO", help="a service, container, host or outside")
    r.add_argument("--json", action="store_true", help="the cells as JSON")
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--dot", action="store_true", help="the open cells as a Graphviz graph")
    fmt.add_argument("--mermaid", action="store_true", help="the open cells as a Mermaid flowchart")
    r.add_argument("--verify", action="store_true",
                   help="on a project that is up: test every cell live, print the disagreeing ones, exit 1 if any")
    r.add_argument("--max-probes", type=int, default=2000, metavar="N",
                   help="with --verify: probe at most N (port, cell) pairs, sampling beyond (default 2000)")
    r.add_argument("--timeout", type=float, default=0.5, metavar="SECONDS",
                   help="with --verify: how long a closed port is waited for (default 0.5)")

    sub.add_parser("dns", help="run the project's embedded DNS server in the foreground")
    return p


def _global_options(p: argparse.ArgumentParser, default: Any) -> None:
    """The options every verb accepts; after the verb they default to SUPPRESS so they do not
    overwrite the values given before it."""
    top = default is None
    p.add_argument("-f", "--file", action="append", dest="files", metavar="FILE",
                   default=[] if top else default,
                   help="compose file (repeatable; default: compose.yaml, compose.yml, ...)")
    p.add_argument("-p", "--project-name", dest="project_name", metavar="NAME",
                   default=None if top else default, help=PROJECT_NAME_HELP)
    p.add_argument("--project-directory", metavar="DIR", default=None if top else default,
                   help="project directory (default: the first file's)")
    p.add_argument("--env-file", action="append", dest="env_files", metavar="FILE",
                   default=[] if top else default,
                   help="environment file instead of PROJECT_DIR/.env (repeatable)")
    p.add_argument("--profile", action="append", dest="profiles", metavar="P",
                   default=[] if top else default, help="enable a profile (repeatable; also COMPOSE_PROFILES)")
    p.add_argument("--cluster", metavar="URL", default=None if top else default,
                   help="cluster store for overlay networks across hosts: etcd://HOST:PORT[,HOST:PORT...] "
                        "(also COMPOSE_NET_CLUSTER)")
    p.add_argument("--debug", action="store_true", default=False if top else default,
                   help="show a traceback on errors")


def _progress_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action="store_true", help="print progress even when not a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="print no progress")


# --- loading -------------------------------------------------------------------------------


def _load(args: argparse.Namespace, services: Sequence[str] = ()):
    """Load the project; `services` (from `up SERVICE...`) are enabled whatever their profiles."""
    from compose_net.loader import LoadOptions, load

    result = load(
        LoadOptions(
            files=tuple(args.files),
            project_name=args.project_name,
            project_directory=args.project_directory,
            env_files=tuple(args.env_files),
            profiles=tuple(args.profiles),
            services=tuple(services),
        )
    )
    for warning in result.warnings:
        print(str(warning), file=sys.stderr)
    return result


def _project_name(args: argparse.Namespace) -> str:
    """The project name for commands that work from state alone (down, ps, dns): `-p` or
    COMPOSE_PROJECT_NAME without reading any file; otherwise the compose file decides."""
    name = args.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
    if name:
        from compose_net.loader import check_project_name

        check_project_name(name, "-p" if args.project_name else "COMPOSE_PROJECT_NAME")
        return name
    return _load(args).project.name


def _planned(args: argparse.Namespace, services: Sequence[str] = (), claim: bool = True) -> tuple[Any, Optional[Any]]:
    """What `up` applies now: the desired plan held against the journal and the kernel. With
    it, what `up` keeps once applied so that the next run can reuse the desired plan (None when
    this run reused it). The desired plan is made anew only when something it is made from
    changed (`fingerprint`); the kernel is always read. `claim=False` (check, dry-run): a
    cluster store is only read, nothing is claimed in it."""
    from compose_net import fingerprint, state
    from compose_net.loader import inputs
    from compose_net.plan.planner import plan_up
    from compose_net.probe import probe_host

    facts = probe_host(firewall=_can_observe())
    if not _can_observe():
        # not root: nothing can be up, so the whole plan is what up does
        return plan_up(_selected(_load(args, services).project, services), facts), None
    url = cluster_url(args)
    if url:
        claim = claim and not getattr(args, "dry_run", False)
        return _cluster_planned(args, services, url, facts, claim), None
    key = fingerprint.key(_load_options(args, services), os.environ, facts)
    kept = state.find_desired(key, args.project_name or os.environ.get("COMPOSE_PROJECT_NAME"))
    if kept is not None and fingerprint.unchanged(kept.files):
        for warning in kept.warnings:
            print(warning, file=sys.stderr)
        desired, keep = kept.plan, None
    else:
        with inputs.recording() as paths:
            result = _load(args, services)
        desired = plan_up(_selected(result.project, services), facts)
        keep = state.Desired(key, fingerprint.files(paths), desired, tuple(str(w) for w in result.warnings))
    return _against_kernel(desired, facts), keep


def cluster_url(args: argparse.Namespace) -> Optional[str]:
    from compose_net.cluster import url_setting

    return url_setting(getattr(args, "cluster", None), os.environ)


def _cluster_planned(args: argparse.Namespace, services: Sequence[str], url: str, facts: Any,
                     claim: bool) -> Any:
    """The plan of a host in a cluster: the store is asked first (unreachable: nothing changes),
    then the container names, overlay subnets, VNIs and addresses it fixes are planned like host
    facts. Never reused from a kept plan: other hosts' endpoints change without any local input."""
    from compose_net import cluster
    from compose_net.plan.planner import plan_up

    ttl = cluster.ttl_setting(os.environ)
    store = cluster.Store.from_url(url)
    project = _selected(_load(args, services).project, services)
    project, facts = cluster.prepare(store, url, project, facts, ttl, claim)
    return _against_kernel(plan_up(project, facts), facts)


def _against_kernel(desired: Any, facts: Any) -> Any:
    """The desired plan held against what the project's journal records and the kernel holds."""
    from compose_net import observe, state
    from compose_net.plan.planner import against_kernel

    recorded = state.Journal(desired.project).read().ops
    observed = observe.read(observe.query(desired.ops + recorded))
    return against_kernel(desired, facts, recorded, observed)


def _load_options(args: argparse.Namespace, services: Sequence[str]) -> tuple:
    return (tuple(args.files), args.project_name, args.project_directory, tuple(args.env_files),
            tuple(args.profiles), tuple(services))


def _can_observe() -> bool:
    return os.geteuid() == 0


# --- commands ------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    result = _load(args)
    if args.quiet:
        return 0
    if args.services or args.networks:
        # as `docker compose config --services/--networks`: names only, sorted
        if args.services:
            _out("\n".join(sorted(result.config.get("services") or {})))
        if args.networks:
            _out("\n".join(sorted(result.config.get("networks") or {})))
        return 0
    from compose_net.loader.config_output import render

    _out(render(result, args.format, _config_extension(result.project)))
    return 0


def _config_extension(project: Any) -> Optional[dict]:
    """Containers and their addresses as planned on an empty host (so `config` is the same on
    every machine; `up` picks free subnets on the real one). A project that cannot be planned
    is still printed, as `docker compose config` leaves those checks to the engine."""
    from compose_net.errors import ComposeNetError as PlanningFailed
    from compose_net.plan.planner import summary
    from compose_net.plan.render import config_extension
    from compose_net.probe import host_settings

    try:
        # the host's address pools count (as they would for up); its routes and projects do not
        extension = config_extension(summary(project, host_settings()))
        return extension if extension["containers"] or extension["networks"] else None
    except PlanningFailed as exc:
        print(f"warning: x-compose-net left out: {exc}", file=sys.stderr)
        return None


def cmd_up(args: argparse.Namespace) -> int:
    if args.dry_run:
        plan, _ = _planned(args, args.services)
        from compose_net.plan import render

        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        _out(render.render_json(plan) if args.json else render.render_text(plan))
        return 0
    from compose_net import executor, state

    reporter = Progress.for_args(args)
    started = time.monotonic()
    with state.host_lock():
        plan, keep = _planned(args, args.services)
        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for line in _repairs(plan):
            # drift found and mended: said on stderr even without progress, as warnings are
            print(line, file=sys.stderr)
        outcome = executor.up(plan, progress=reporter)
        if keep is not None and not plan.ops and state.Journal(plan.project).exists():
            # kept only from an up that changed nothing: one that applied ops took its digest
            # before its own objects were on the host, so the next run could not match it
            state.save_desired(keep)
        if plan.state is not None and plan.state.cluster:
            from compose_net import cluster

            cluster.register(cluster.store_of(plan.state), plan.state,
                             cluster.ttl_setting(os.environ))
    for warning in getattr(outcome, "warnings", ()):
        print(f"warning: {warning}", file=sys.stderr)
    message = f"project {plan.project} {_describe_outcome(outcome)}"
    if not getattr(outcome, "changed", True) and not reporter.enabled and not args.quiet:
        # not progress but the answer: an `up` that changed nothing says so even when quiet
        # about progress (on stderr, so scripts reading stdout see nothing)
        print(message, file=sys.stderr)
    reporter.done(message, time.monotonic() - started)
    return 0


def _repairs(plan: Any) -> list[str]:
    """One line per unit and reason of what the plan mends (ops whose note says `repair:`)."""
    lines = []
    for op in plan.ops:
        if op.note.startswith("repair: "):
            line = f"repairing {op.unit}: {op.note[len('repair: '):]}"
            if line not in lines:
                lines.append(line)
    return lines


def _selected(project: Any, services: Sequence[str]) -> Any:
    """What `up SERVICE...` brings up: those services, their dependencies, and the services of
    the project that are up already (as `docker compose up web` leaves the others running; an
    `up` of the subset alone would tear them down as removed)."""
    if not services:
        return project
    from compose_net import state
    from compose_net.graph import select

    running = state.read_summary(project.name)
    keep = [c.service for c in running.containers] if running else []
    return select(project, tuple(dict.fromkeys([*services, *(s for s in keep if s in project.services)])))


def _describe_outcome(outcome: Any) -> str:
    message = getattr(outcome, "message", None)
    return message if message else "is up"


def cmd_down(args: argparse.Namespace) -> int:
    name = _project_name(args)
    from compose_net import executor, state

    if args.dry_run:
        ops = executor.plan_down(name)
        if args.json:
            _out(json.dumps([op.to_json() for op in ops], indent=2))
        elif not ops:
            _out(f"project {name} is not up: nothing to do")
        else:
            from compose_net.plan.render import render_down_text

            _out(render_down_text(name, ops))
        return 0
    reporter = Progress.for_args(args)
    started = time.monotonic()
    with state.host_lock():
        if not state.Journal(name).exists():
            # as `docker compose down` warns about a project it finds nothing of
            print(f"warning: project {name} is not up: nothing to remove", file=sys.stderr)
            return 0
        summary = state.read_summary(name)
        if summary is not None and summary.live.containers:
            from compose_net import liveops

            liveops.stop_adhoc(summary)  # the processes `run --detach` left in its containers
        executor.down(name, progress=reporter)
        if summary is not None and summary.cluster:
            from compose_net import cluster

            try:
                cluster.leave(cluster.store_of(summary), summary)
            except cluster.ClusterError as exc:
                # the host's part is gone; its endpoints leave the store when its lease expires
                print(f"warning: {exc}; this host's endpoints expire with its lease", file=sys.stderr)
    reporter.done(f"project {name} is down", time.monotonic() - started)
    return 0


def _summaries() -> list:
    import dataclasses
    from datetime import datetime, timezone

    from compose_net import state

    out = []
    for name in state.list_projects():
        summary = state.read_summary(name)
        if summary is None:
            continue
        if not summary.created:
            # the summary is written once the project is up: its time is the networks' creation
            try:
                mtime = state.summary_path(name).stat().st_mtime
            except OSError:
                mtime = None
            if mtime is not None:
                stamp = datetime.fromtimestamp(mtime, tz=timezone.utc)
                summary = dataclasses.replace(summary, created=stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        out.append(_with_cluster(summary))
    return out


def cmd_ps(args: argparse.Namespace) -> int:
    name = _project_name(args)
    from compose_net import state, views

    summary = state.read_summary(name)
    if summary is None:
        if args.format == "json":
            _out("[]")
        else:
            # the header alone, as `docker compose ps` prints for a project with no containers
            from compose_net.summary import Summary

            _out(_table(views.ps_rows(Summary(name))))
            print(f"project {name} is not up", file=sys.stderr)
        return 0
    summary = _with_cluster(summary)
    health = _health(summary)
    _emit(args.format, lambda: views.ps_json(summary, health), lambda: views.ps_rows(summary, health))
    if args.format != "json":
        for line in views.ps_problems(summary, health):
            print(line, file=sys.stderr)
    return 0


def _with_cluster(summary: Any) -> Any:
    """Other hosts' endpoints as the cluster store has them now (the recorded ones, with a
    warning, when it cannot be asked)."""
    if not summary.cluster:
        return summary
    from compose_net import cluster

    try:
        return cluster.current(summary)
    except cluster.ClusterError as exc:
        print(f"warning: {exc}; other hosts' endpoints as of the last up", file=sys.stderr)
        return summary


def _health(summary: Any) -> Optional[dict]:
    """What the kernel lacks of each container of a project that is up, from its journal (None
    when this user cannot look: without root, the recorded state is shown as it is)."""
    if not _can_observe():
        return None
    from compose_net import observe, state, views
    from compose_net.plan.reconcile import differences

    recorded = state.Journal(summary.project).read().ops
    observed = observe.read(observe.query(recorded))
    return views.container_health(differences(recorded, observed, summary))


def cmd_ls(args: argparse.Namespace) -> int:
    from compose_net import views

    summaries = _summaries()
    health = {s.project: h for s in summaries if not s.standalone and (h := _health(s)) is not None}
    _emit(args.format, lambda: views.ls_json(summaries, health), lambda: views.ls_rows(summaries, health))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when the kernel holds exactly what the compose file plans, 1 with one line per
    difference (what `up` would do about it) otherwise."""
    if not _can_observe():
        _load(args)  # a broken file is reported as such first
        raise ComposeNetError("check reads the project's namespaces and firewall: run it as root")
    services: tuple = ()
    if cluster_url(args):
        # a host of a cluster runs some of the project's services: those are what it checks
        from compose_net import state

        running = state.read_summary(_project_name(args))
        services = tuple(dict.fromkeys(c.service for c in running.containers)) if running else ()
    plan, _ = _planned(args, services, claim=False)
    differences = [{"unit": op.unit, "op": op.kind, "description": op.describe(), "reason": _reason(op)}
                   for op in plan.ops]
    if args.json:
        _out(json.dumps(differences, indent=2))
    elif not differences:
        _out(f"project {plan.project}: the kernel matches the plan")
    else:
        for d in differences:
            _out(f"{d['unit']}: {d['reason']} ({d['description']})")
    return 1 if differences else 0


def _reason(op: Any) -> str:
    if op.note.startswith("repair: "):
        return op.note[len("repair: "):]
    if op.note == "removed from the project" or op.removal:
        return op.note or "to be removed"
    return "not made yet"


def cmd_network(args: argparse.Namespace) -> int:
    from compose_net import views

    sub = args.network_command
    if sub == "ls":
        summaries = _summaries()
        _emit(args.format, lambda: views.network_ls_json(summaries), lambda: views.network_ls_rows(summaries))
        return 0
    if sub == "inspect":
        summaries = _summaries()
        found, missing = [], []
        for name in args.names:
            data = views.network_inspect(summaries, name)
            (found.append(data) if data is not None else missing.append(name))
        _out(json.dumps(found, indent=4))
        for name in missing:
            print(f"error: no such network: {name}", file=sys.stderr)
        return 1 if missing else 0
    from compose_net import netadmin, state

    if sub in ("connect", "disconnect"):
        from compose_net import liveops

        with state.host_lock():
            if sub == "connect":
                liveops.connect(args.network, args.container, args.alias, args.ip, args.ip6)
            else:
                liveops.disconnect(args.network, args.container, args.force)
        return 0
    with state.host_lock():
        if sub == "prune":
            removed = netadmin.prune()
            if removed:
                _out("Deleted Networks:\n" + "\n".join(removed))
            return 0
        if sub == "create":
            netadmin.create(args.name, subnet=args.subnet, gateway=args.gateway,
                            internal=args.internal, driver=args.driver, environment=dict(os.environ))
            _out(args.name)
        else:
            for name in args.names:
                netadmin.remove(name)
                _out(name)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ConfigError("exec", 0, "", "no command given (compose-net exec SERVICE -- CMD...)")
    name = _project_name(args)
    from compose_net import state

    summary = state.read_summary(name)
    if summary is None:
        raise ComposeNetError(f"project {name} is not up")
    container = next((c for c in summary.containers if c.service == args.service and c.index == args.index), None)
    if container is None:
        raise ComposeNetError(f"no container {args.service} #{args.index} in project {name}")
    import shutil

    # the namespace changes the network and /etc files, not the programs: look the command up
    # here, so a missing one exits 127 and one that cannot run 126, as `docker exec` does
    found = shutil.which(cmd[0])
    if found is None:
        exists = os.path.exists(cmd[0]) if "/" in cmd[0] else False
        print(f"error: {cmd[0]}: {'permission denied' if exists else 'executable file not found'}",
              file=sys.stderr)
        return 126 if exists else 127
    sys.stdout.flush()
    if container.uts:
        # the container's hostname: its UTS namespace, entered here and kept across the exec
        from compose_net.executor import namespaces

        try:
            namespaces.enter_uts(container.uts)
        except OSError as exc:
            raise ComposeNetError(f"cannot enter the UTS namespace of {container.name}: "
                                  f"{exc.strerror or exc}") from exc
    if container.netns:
        # `ip netns exec` also bind-mounts /etc/netns/NAME/{resolv.conf,hosts,hostname} over /etc.
        argv = ["ip", "netns", "exec", container.netns, *cmd]
    else:
        argv = cmd
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise ComposeNetError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    return 127  # not reached


def _run_words(args: argparse.Namespace) -> tuple[Optional[str], list[str]]:
    """SERVICE and CMD of `run [SERVICE] [-- CMD...]` (no SERVICE when --network is given)."""
    words = list(args.words)
    service = None
    if not args.network and words and words[0] != "--":
        service = words.pop(0)
    if words and words[0] == "--":
        words = words[1:]
    return service, words


def cmd_run(args: argparse.Namespace) -> int:
    from compose_net import liveops, state

    service, cmd = _run_words(args)
    if cmd:
        _runnable(cmd[0])
    with state.host_lock():
        if service is not None:
            if args.network or args.ip or args.publish or args.name:
                raise ConfigError("run", 0, "SERVICE", "--network, --name, --ip and --publish are for ad-hoc "
                                  "containers, not with SERVICE")
            started = liveops.run_service(_load(args).project, service)
        else:
            started = liveops.run(args.network, args.name, args.hostname, args.alias, args.ip, args.publish,
                                  args.detach)
    ctr = started.container
    from compose_net.executor import namespaces

    if args.detach:
        if cmd:
            namespaces.spawn(ctr.netns, ctr.uts, cmd, log=str(state.project_dir(started.project) / f"run-{ctr.name}.log"))
        _out(ctr.name)
        return 0
    return _run_attached(ctr, cmd or [os.environ.get("SHELL") or "/bin/sh"])


def _run_attached(ctr: Any, cmd: list[str]) -> int:
    """CMD in the container with our stdio; the container goes when it ends, also when we are
    told to stop (the signal is passed on to CMD first)."""
    import signal

    from compose_net import liveops, state
    from compose_net.executor import namespaces

    sys.stdout.flush()
    proc = namespaces.spawn(ctr.netns, ctr.uts, cmd)
    passed = {sig: signal.signal(sig, lambda signum, _: proc.send_signal(signum))
              for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        status = proc.wait()
    finally:
        for sig, old in passed.items():
            signal.signal(sig, signal.SIG_IGN)  # nothing stops the removal half-way
        with state.host_lock():
            liveops.remove(ctr.name)
        for sig, old in passed.items():
            signal.signal(sig, old)
    return status if status >= 0 else 128 - status


def _runnable(command: str) -> None:
    import shutil

    if shutil.which(command) is None:
        raise ComposeNetError(f"{command}: executable file not found")


def cmd_rm(args: argparse.Namespace) -> int:
    from compose_net import liveops, state

    with state.host_lock():
        for name in args.names:
            liveops.remove(name)
            _out(name)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    result = _load(args)
    from compose_net.plan.planner import plan_up
    from compose_net.plan.render import render_graph
    from compose_net.probe import probe_host

    plan = plan_up(result.project, probe_host())

    fmt = args.format
    if args.output:
        fmt = "dot"
    text = render_graph(result.project, plan, fmt or "mermaid")
    if not args.output:
        _out(text)
        return 0
    import shutil
    import subprocess

    kind = os.path.splitext(args.output)[1].lstrip(".").lower()
    if kind not in ("svg", "png", "pdf"):
        raise ConfigError("graph", 0, "--output", f"unknown output type {kind!r} (svg, png or pdf)")
    if shutil.which("dot") is None:
        raise ComposeNetError("Graphviz `dot` is not installed (apt-get install graphviz)")
    proc = subprocess.run(["dot", f"-T{kind}", "-o", args.output], input=text, text=True, capture_output=True)
    if proc.returncode:
        raise ComposeNetError(f"dot failed: {proc.stderr.strip()}")
    return 0


def cmd_reach(args: argparse.Namespace) -> int:
    from compose_net import reach

    if args.verify:
        return _reach_verify(args)
    result = _load(args)
    from compose_net.plan.planner import summary
    from compose_net.probe import probe_host

    m = reach.matrix(summary(result.project, probe_host()))
    sources, targets = _reach_nodes(m, args)
    if args.dot or args.mermaid:
        _out(reach.render_graph(m, "dot" if args.dot else "mermaid"))
    elif args.json:
        _out(json.dumps(reach.to_json(m, sources, targets), indent=2))
    else:
        _out(reach.render_text(m, sources, targets))
    return 0


def _reach_nodes(m: Any, args: argparse.Namespace) -> tuple[Optional[list], Optional[list]]:
    try:
        sources = m.find(args.source) if args.source else None
        targets = m.find(args.target) if args.target else None
    except LookupError as exc:
        raise ConfigError("reach", 0, "FROM" if args.source and str(args.source) in str(exc) else "TO",
                          str(exc)) from None
    return sources, targets


def _reach_verify(args: argparse.Namespace) -> int:
    from compose_net import reach, reach_verify, state

    name = _project_name(args)
    recorded = state.read_summary(name)
    if recorded is None:
        raise ComposeNetError(f"project {name} is not up: reach --verify tests a running project")
    m = reach.matrix(recorded)
    sources, targets = _reach_nodes(m, args)
    report = reach_verify.verify(m, sources, targets, max_probes=args.max_probes, timeout=args.timeout)
    if args.json:
        _out(json.dumps(reach_verify.to_json(report), indent=2))
    else:
        _out(reach_verify.render_text(report))
    return 1 if report.disagreements else 0


def cmd_dns(args: argparse.Namespace) -> int:
    name = _project_name(args)
    import logging

    from compose_net import state
    from compose_net.dns import server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server.serve_forever(name, str(state.summary_path(name)))
    return 0


COMMANDS = {
    "config": cmd_config,
    "up": cmd_up,
    "down": cmd_down,
    "ps": cmd_ps,
    "ls": cmd_ls,
    "network": cmd_network,
    "exec": cmd_exec,
    "graph": cmd_graph,
    "run": cmd_run,
    "rm": cmd_rm,
    "check": cmd_check,
    "dns": cmd_dns,
    "reach": cmd_reach,
}


# --- output --------------------------------------------------------------------------------


class Progress:
    """Prints a line per network and container as the executor reports them, like
    `docker compose`; silent when not a terminal unless asked."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> "Progress":
        if getattr(args, "quiet", False):
            return cls(False)
        return cls(getattr(args, "progress", False) or sys.stdout.isatty())

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        print(format_event(event), flush=True)

    def done(self, message: str, seconds: float) -> None:
        if self.enabled:
            print(f" ✔ {message:<50} {format_seconds(seconds):>7}", flush=True)


def format_seconds(seconds: float) -> str:
    """A duration as read at a glance: a network or a container takes about a millisecond, so
    fixed 0.01 s steps would print 0.00s for all of them; three significant digits never do."""
    if seconds >= 1:
        return f"{seconds:.2f}s"
    ms = seconds * 1000
    return f"{ms:.2f}ms" if ms < 10 else f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"


def format_event(event: Any) -> str:
    """Events are (kind, name, status[, seconds]) tuples or objects with those attributes; an
    event without seconds (a network removed with the project's one link group deletion) prints
    no time rather than a made-up one."""
    if isinstance(event, str):
        return f" ✔ {event}"
    if isinstance(event, tuple) and len(event) >= 3:
        kind, name, status = event[0], event[1], event[2]
        seconds = event[3] if len(event) > 3 and isinstance(event[3], (int, float)) else None
    else:
        kind = getattr(event, "kind", "")
        name = getattr(event, "name", "")
        status = getattr(event, "status", "")
        seconds = getattr(event, "seconds", None)
    label = f"{str(kind).capitalize()} {name}"
    timing = f" {format_seconds(seconds):>7}" if isinstance(seconds, (int, float)) else ""
    return f" ✔ {label:<40} {str(status).capitalize():<10}{timing}"


def _emit(fmt: str, as_json: Any, as_rows: Any) -> None:
    """`--format json` prints the JSON value, the table format the rows."""
    _out(json.dumps(as_json(), indent=2) if fmt == "json" else _table(as_rows()))


def _table(rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return ""
    rows = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigErrors as exc:
        for err in exc.errors:
            print(str(err), file=sys.stderr)
        if args.debug:
            raise
        return 2
    except ComposeNetError as exc:
        located = isinstance(exc, ConfigError) or getattr(exc, "where", None) is not None
        print(str(exc) if located else f"error: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
