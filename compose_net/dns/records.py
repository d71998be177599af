"""Who sees which names: the project summary turned into per-asking-container views, and what a
view's container is told for a question.

Pure: a `summary.Summary` (the `project.json` written by `up`) in, `Records` out; a view and a
dnslib question in, `respond` gives dnslib records and an rcode, or "not ours". No sockets, no kernel.
The server keeps one `View` per container namespace it listens in; the socket a query arrives on
picks the view.

Docker's observable rules this encodes:
- a name answers only with addresses on networks the asker shares with the target;
- the asker's networks are tried in eth order and the first one that knows the name wins, so a
  target on several shared networks answers its address on the asker's first network, and a
  network-scoped alias answers only that network's address;
- every replica carrying a name (the service name) answers, so the service name gives all of them
  (the resolver shuffles them on every query; glibc's getaddrinfo then sorts by RFC 3484 rule 9,
  so a glibc client spreads only over the replicas whose address shares the longest prefix with
  its own, as behind Docker's DNS);
- `NAME.NETWORK` answers with the target's address on that network (the asker must be on it);
- `links` aliases answer only for the container that declared the link (even on the legacy
  default bridge, where nothing else is discoverable);
- names are case-insensitive; a trailing dot and the asker's `dns_search` suffixes are ignored;
- a known name without addresses of the asked type is an empty NOERROR answer (never forwarded);
- forwarding goes to the container's `dns:` servers, else the host's, at most the first three
  (Docker ignores the rest; `Records.warnings` names what was left out); a container only on
  `internal` networks gets none, and a name unknown to it is NXDOMAIN.

To keep memory flat with many containers the name tables are built once per network and shared
by every view; a view is an ordered tuple of those tables plus its own link table.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from dnslib import AAAA, CLASS, PTR, QTYPE, RCODE, RR, A, DNSLabel, DNSQuestion

from compose_net.errors import PlanError
from compose_net.summary import ContainerState, InterfaceState, NetworkState, Summary

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

DEFAULT_TTL = 600
MAX_TTL = 2**31 - 1
TTL_VARIABLE = "COMPOSE_NET_DNS_TTL"
MAX_UPSTREAMS = 3  # as Docker's embedded resolver (and glibc's MAXNS): later servers are not asked
# dnslib's names for the numbers, looked up once (each lookup in its tables is a Python call)
TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_ANY = QTYPE.A, QTYPE.AAAA, QTYPE.PTR, QTYPE.ANY
CLASS_IN, CLASS_ANY = CLASS.IN, CLASS.reverse["*"]  # dnslib names class 255 "*"
NOERROR, NXDOMAIN = RCODE.NOERROR, RCODE.NXDOMAIN


@dataclass(frozen=True)
class Answer:
    """The addresses one name resolves to for one asker."""

    v4: tuple[ipaddress.IPv4Address, ...] = ()
    v6: tuple[ipaddress.IPv6Address, ...] = ()

    def merged(self, other: "Answer") -> "Answer":
        return Answer(
            self.v4 + tuple(a for a in other.v4 if a not in self.v4),
            self.v6 + tuple(a for a in other.v6 if a not in self.v6),
        )


@dataclass(frozen=True, eq=False)
class NetworkTable:
    """The names one network answers and the reverse names of its container addresses."""

    network: str
    names: Mapping[str, Answer]
    ptr: Mapping[str, str]  # reverse name -> "container.network" (as Docker answers)


@dataclass(frozen=True, eq=False)
class View:
    """What one asking container sees. `scope` is equal for containers that see exactly the
    same answers, so the server can share one reply cache between them."""

    container: str
    netns: str
    tables: tuple[NetworkTable, ...]  # the asker's networks in eth order
    links: Mapping[str, Answer]
    search: tuple[str, ...]
    upstreams: tuple[IPAddress, ...]  # empty: never forward (internal-only container)
    ttl: int
    scope: tuple = field(default=())
    _by_network: Mapping[str, NetworkTable] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_network", {normalize(t.network): t for t in self.tables})

    def lookup(self, qname: str) -> Optional[Answer]:
        """The answer for `qname` (any case, trailing dot or not, maybe with a search suffix);
        None when the name is unknown to this asker."""
        name = normalize(qname)
        found = self._exact(name)
        if found is not None:
            return found
        for suffix in self.search:
            if name.endswith("." + suffix):
                found = self._exact(name[: -len(suffix) - 1])
                if found is not None:
                    return found
        return None

    def _exact(self, name: str) -> Optional[Answer]:
        found = self.links.get(name)
        if found is not None:
            return found
        for table in self.tables:
            found = table.names.get(name)
            if found is not None:
                return found
        # Docker also answers NAME.NETWORK (the form its PTR answers carry) with the target's
        # address on that one network, when the asker is on it. Names and network names may
        # hold dots, so every split is tried, the longest name first, as Docker does.
        cut = name.rfind(".")
        while cut > 0:
            table = self._by_network.get(name[cut + 1 :])
            if table is not None:
                found = table.names.get(name[:cut])
                if found is not None:
                    return found
            cut = name.rfind(".", 0, cut)
        return None

    def reverse(self, qname: str) -> Optional[str]:
        """The PTR target for a reverse name of an address on one of the asker's networks."""
        name = normalize(qname)
        for table in self.tables:
            found = table.ptr.get(name)
            if found is not None:
                return found
        return None


@dataclass(frozen=True, eq=False)
class Records:
    project: str
    ttl: int
    views: Mapping[str, View]  # by netns name: the namespace the server listens in
    warnings: tuple[str, ...] = ()  # for the server's log: what of the summary is not served


@dataclass(frozen=True)
class Reply:
    """What the project itself tells an asker: `records` (maybe none) with `rcode`."""

    rcode: int
    records: tuple[RR, ...] = ()


_NXDOMAIN = Reply(NXDOMAIN)


def respond(view: View, question: DNSQuestion) -> Optional[Reply]:
    """The answer `view`'s container gets for `question`, or None when the name is not the
    project's and goes to the container's upstreams. Answer records carry the question's name as
    asked (its letter case) and come in the records' order; the caller shuffles them."""
    name = _lookup_name(question.qname)
    qtype = question.qtype
    if name is not None and question.qclass in (CLASS_IN, CLASS_ANY):
        owner, ttl = question.qname, view.ttl
        answer = view.lookup(name)
        if answer is not None:
            records: list[RR] = []
            if qtype == TYPE_A or qtype == TYPE_ANY:
                records += [RR(owner, TYPE_A, ttl=ttl, rdata=A(tuple(a.packed))) for a in answer.v4]
            if qtype == TYPE_AAAA or qtype == TYPE_ANY:
                records += [RR(owner, TYPE_AAAA, ttl=ttl, rdata=AAAA(tuple(a.packed))) for a in answer.v6]
            return Reply(NOERROR, tuple(records))
        if name.endswith((".in-addr.arpa", ".ip6.arpa")):
            target = view.reverse(name)
            if target is not None:
                if qtype != TYPE_PTR and qtype != TYPE_ANY:
                    return Reply(NOERROR)
                return Reply(NOERROR, (RR(owner, TYPE_PTR, ttl=ttl, rdata=PTR(DNSLabel(target.encode()))),))
    if view.upstreams:
        return None
    # Nowhere to forward (internal networks only): the name does not exist for this asker.
    return _NXDOMAIN


def _lookup_name(qname: DNSLabel) -> Optional[str]:
    """The question's name as the views spell theirs (ASCII, lower case), or None when it cannot
    be one of them: a label holding a dot, or bytes outside ASCII (DNS compares only ASCII
    letters without case, so str.lower() on other text would be wrong)."""
    labels = qname.label
    raw = b".".join(labels)
    if not raw.isascii() or any(b"." in label for label in labels):
        return None
    return raw.lower().decode("ascii")


def ttl_setting(environment: Mapping[str, str]) -> int:
    """The TTL of the project's answers for the summary's `dns_ttl`: `COMPOSE_NET_DNS_TTL` from
    the shell or the project's `.env` (whole seconds, 0 to 2^31-1), else Docker's 600."""
    text = (environment.get(TTL_VARIABLE) or "").strip()
    if not text:
        return DEFAULT_TTL
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_TTL:
        raise PlanError(f"{TTL_VARIABLE}={text!r}: the DNS TTL is a whole number of seconds from 0 to {MAX_TTL}")
    return int(text)


def normalize(name: str) -> str:
    return name.rstrip(".").lower()


def _eth_key(iface: InterfaceState) -> tuple[int, str]:
    ifname = iface.ifname or ""
    digits = ifname[3:] if ifname.startswith("eth") else ""
    return (int(digits), ifname) if digits.isdigit() else (1 << 30, ifname)


def _endpoint_names(container: ContainerState, iface: InterfaceState) -> list[str]:
    names = [container.service, container.name, *iface.aliases]
    if container.hostname:
        names.append(container.hostname)
    if container.id:
        names.append(container.short_id)
    return [normalize(n) for n in names if n]


def build(summary: Summary) -> Records:
    """Every container namespace's view of the project's names."""
    # 0 is a valid TTL (answers not cached); the field is a 32-bit unsigned count (RFC 2181 §8).
    ttl = min(max(int(summary.dns_ttl), 0), MAX_TTL)
    networks = {n.name: n for n in summary.networks}
    names: dict[str, dict[str, Answer]] = {n: {} for n in networks}
    ptr: dict[str, dict[str, str]] = {n: {} for n in networks}
    # service -> network -> Answer, for links
    by_service: dict[str, dict[str, Answer]] = {}
    for ctr in summary.containers:
        for iface in ctr.interfaces:
            net = iface.network
            if net not in networks:
                continue
            v4 = iface.ipv4.ip if iface.ipv4 else None
            v6 = iface.ipv6.ip if iface.ipv6 else None
            ans = Answer((v4,) if v4 else (), (v6,) if v6 else ())
            per_net = by_service.setdefault(ctr.service, {})
            per_net[net] = per_net[net].merged(ans) if net in per_net else ans
            if not networks[net].discovery:
                continue  # Docker's default bridge has no service discovery; only links resolve there
            table = names[net]
            for name in _endpoint_names(ctr, iface):
                table[name] = table[name].merged(ans) if name in table else ans
            target = f"{ctr.name}.{net}"
            for addr in (v4, v6):
                if addr is not None:
                    ptr[net][addr.reverse_pointer] = target

    tables = {n: NetworkTable(n, names[n], ptr[n]) for n in networks}
    views: dict[str, View] = {}
    warnings: list[str] = []
    for ctr in summary.containers:
        ifaces = sorted(ctr.interfaces, key=_eth_key)
        # A container sharing another's namespace answers through that one's sockets.
        if not ctr.netns or ctr.shares or not ifaces:
            continue
        views[ctr.netns] = _view(ctr, ifaces, networks, tables, by_service, summary.host_nameservers, ttl, warnings)
    return Records(project=summary.project, ttl=ttl, views=views, warnings=tuple(warnings))


def _view(ctr: ContainerState, ifaces: list[InterfaceState], networks: dict[str, NetworkState],
          tables: dict[str, NetworkTable], by_service: dict[str, dict[str, Answer]],
          host_ns: tuple[IPAddress, ...], ttl: int, warnings: list[str]) -> View:
    own_nets = [i.network for i in ifaces if i.network in networks]
    links: dict[str, Answer] = {}
    for link in ctr.links:
        per_net = by_service.get(link.service, {})
        for net in own_nets:
            if net in per_net:
                links[normalize(link.alias or link.service)] = per_net[net]
                break
    if all(networks[n].internal for n in own_nets):
        upstreams: tuple[IPAddress, ...] = ()
    elif ctr.dns:
        upstreams = ctr.dns
    else:
        upstreams = host_ns
    if len(upstreams) > MAX_UPSTREAMS:
        left_out = ", ".join(map(str, upstreams[MAX_UPSTREAMS:]))
        warnings.append(f"{ctr.name}: only the first {MAX_UPSTREAMS} DNS servers are asked, as by Docker; "
                        f"not {left_out}")
        upstreams = upstreams[:MAX_UPSTREAMS]
    search = tuple(normalize(s) for s in ctr.dns_search if normalize(s))
    link_key = tuple(sorted((k, v.v4, v.v6) for k, v in links.items()))
    return View(container=ctr.name, netns=ctr.netns, tables=tuple(tables[n] for n in own_nets), links=links,
                search=search, upstreams=upstreams, ttl=ttl, scope=(tuple(own_nets), link_key, search, upstreams))
