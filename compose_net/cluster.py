"""The cluster store: the only module that talks to etcd (v3, through its JSON gateway, etcd3gw).

What hosts running one project share: each overlay network's subnet and VNI (chosen once, by
whichever host comes first), the endpoint addresses leased on it (never twice), the hosts
themselves (their underlay address is their VTEP) and their endpoints. Everything a host owns
lives under its etcd lease, so a host that dies leaves the cluster when the lease expires.

Key layout, all under PREFIX (default `/compose-net/v1/`; docs/design.md has the same table):

    hosts/HOST                         {"underlay", "ttl", "routes"}            host lease
    networks/NET/subnet                "10.0.3.0/24"                            permanent
    networks/NET/vni                   "4100"                                   permanent
    networks/NET/addresses/ADDR        "HOST CONTAINER"                         host lease
    networks/NET/endpoints/CONTAINER   {"vtep", "address", "mac", "names"}          host lease
    subnets/SUBNET                     NET   (SUBNET with "/" as "_")           permanent
    vnis/VNI                           NET                                      permanent
    projects/PROJECT/containers/NAME   HOST                                     host lease

Every choice is one transaction that compares create_revision == 0 on the keys it claims
(compare-and-swap): two hosts choosing at the same moment cannot both win, the loser rereads.
NET is the network's full name (PROJECT_NAME), HOST the underlay address.

`up --dry-run` and `check` ask the same questions without claiming anything (`commit=False`): what
is free now is what `up` would take, unless another host takes it first.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import os
import random
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional
from urllib.parse import urlsplit

from compose_net.errors import RuntimeFailure

DEFAULT_PREFIX = "/compose-net/v1/"
DEFAULT_TTL = 15
TTL_ENV = "COMPOSE_NET_CLUSTER_TTL"
ADVERTISE_ENV = "COMPOSE_NET_CLUSTER_ADVERTISE"
GLOBAL_POOL = ipaddress.IPv4Network("10.0.0.0/8")
GLOBAL_SIZE = 24
VNI_FIRST = 4096  # Docker's overlay VNIs start here
VNI_LAST = (1 << 24) - 1
ENV = "COMPOSE_NET_CLUSTER"


class ClusterError(RuntimeFailure):
    """etcd could not be reached or refused what was asked: nothing was changed by this run."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class NetworkClaim:
    network: str
    subnet: ipaddress.IPv4Network
    vni: int


@dataclass(frozen=True)
class RemoteEndpoint:
    network: str
    container: str
    vtep: ipaddress.IPv4Address  # the host it lives on (its underlay address)
    address: ipaddress.IPv4Address
    mac: str
    names: tuple[str, ...]

    @property
    def host(self) -> str:
        """The host's name in the store: its underlay address."""
        return str(self.vtep)


def parse_url(text: str) -> tuple[Endpoint, ...]:
    """`etcd://host:port[,host:port...]` → endpoints; ValueError naming the bad part."""
    if not text.startswith("etcd://"):
        raise ValueError(f"cluster URL {text!r}: expected etcd://HOST:PORT[,HOST:PORT...]")
    out = []
    for part in text[len("etcd://"):].rstrip("/").split(","):
        parsed = urlsplit("//" + part)
        try:
            port = parsed.port or 2379
        except ValueError:
            raise ValueError(f"cluster URL {text!r}: bad port in {part!r}") from None
        if not parsed.hostname or parsed.path or parsed.username:
            raise ValueError(f"cluster URL {text!r}: bad endpoint {part!r}")
        out.append(Endpoint(parsed.hostname, port))
    return tuple(out)


def _subnet_key(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet).replace("/", "_")


def candidate_subnets(taken: Iterable[ipaddress._BaseNetwork]) -> Iterator[ipaddress.IPv4Network]:
    """Docker's global pool in /24s, skipping what overlaps anything taken (routes, claims)."""
    taken = [t for t in taken if t.version == 4]
    for subnet in GLOBAL_POOL.subnets(new_prefix=GLOBAL_SIZE):
        if not any(subnet.overlaps(t) for t in taken):
            yield subnet


def candidate_addresses(subnet: ipaddress.IPv4Network, reserved: set) -> Iterator[ipaddress.IPv4Address]:
    for addr in subnet.hosts():
        if addr not in reserved:
            yield addr


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _put(key: str, value: str, lease: Optional[int] = None) -> dict:
    req: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def _absent(key: str) -> dict:
    return {"key": _b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}


class Store:
    """One connection to an etcd cluster (the first endpoint that answers)."""

    def __init__(self, endpoints: tuple[Endpoint, ...], prefix: str = DEFAULT_PREFIX,
                 timeout: float = 3.0, advertise: Optional[ipaddress.IPv4Address] = None):
        import etcd3gw  # imported only by commands that use a cluster
        self.prefix = prefix
        self.advertise = advertise
        errors = []
        for ep in endpoints:
            client = etcd3gw.Etcd3Client(host=ep.host, port=ep.port, timeout=timeout, api_path="/v3/")
            try:
                client.status()
            except Exception as exc:  # etcd3gw raises its own tree and requests' errors
                errors.append(f"{ep.host}:{ep.port}: {type(exc).__name__}")
                continue
            self.client, self.endpoint = client, ep
            return
        raise ClusterError("cluster store unreachable (" + "; ".join(errors) + "): nothing was changed")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "Store":
        """The store at `url`; this host's VTEP is `COMPOSE_NET_CLUSTER_ADVERTISE` when set (a
        host whose underlay is not the way to etcd), else the address it reaches etcd from."""
        try:
            endpoints = parse_url(url)
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
        kw.setdefault("advertise", advertise_setting(os.environ))
        return cls(endpoints, **kw)

    # --- raw access -------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except Exception as exc:
            raise ClusterError(f"cluster store {self.endpoint.host}:{self.endpoint.port}: "
                               f"{type(exc).__name__}: {exc}") from None

    def _txn(self, compare: list, success: list, failure: Optional[list] = None) -> dict:
        return self._call(self.client.transaction,
                          {"compare": compare, "success": success, "failure": failure or []})

    def get(self, key: str) -> Optional[str]:
        values = self._call(self.client.get, self.prefix + key)
        return values[0].decode() if values else None

    def get_prefix(self, key: str) -> dict[str, str]:
        pairs = self._call(self.client.get_prefix, self.prefix + key)
        n = len(self.prefix)
        return {meta["key"].decode()[n:]: value.decode() for value, meta in pairs}

    def watch_prefix(self, key: str, on_event: Any) -> Any:
        """Call `on_event()` (from a thread of its own) on every change under KEY until the
        returned function is called. A watch that breaks says nothing: callers poll as well."""
        import threading

        events, cancel = self._call(self.client.watch_prefix, self.prefix + key)

        def follow() -> None:
            try:
                for _ in events:
                    on_event()
            except Exception:  # the stream broke: the caller's poll notices
                pass

        threading.Thread(target=follow, name=f"watch {key}", daemon=True).start()
        return cancel

    def delete_prefix(self, key: str) -> None:
        self._call(self.client.delete_prefix, self.prefix + key)

    # --- hosts and leases -------------------------------------------------------------------
    def underlay_address(self) -> ipaddress.IPv4Address:
        """This host's VTEP: the advertised address, or the one it reaches etcd from (no packet
        is sent)."""
        if self.advertise is not None:
            return self.advertise
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((self.endpoint.host, self.endpoint.port))
            return ipaddress.IPv4Address(s.getsockname()[0])

    def register_host(self, host: str, ttl: int = DEFAULT_TTL, routes: Iterable[ipaddress._BaseNetwork] = ()) -> int:
        """The host's lease (reused while it lives) with hosts/HOST under it, naming the IPv4
        destinations the host routes (no host's routes are chosen as an overlay subnet)."""
        values = self._call(self.client.get, self.prefix + "hosts/" + host, metadata=True)
        lease = int(values[0][1].get("lease", 0)) if values else 0
        if not (lease and self.keepalive(lease)):
            lease = int(self._call(self.client.lease, ttl).id)
        value = json.dumps({"underlay": host, "ttl": ttl,
                            "routes": sorted(str(r) for r in routes if r.version == 4)})
        if not values or values[0][0].decode() != value or int(values[0][1].get("lease", 0)) != lease:
            self._call(self.client.put, self.prefix + "hosts/" + host, value, lease=_Lease(lease))
        return lease

    def keepalive(self, lease: int) -> bool:
        """Refresh the lease; False when it has expired (its keys are gone)."""
        result = self._call(self.client.post, self.client.get_url("/lease/keepalive"),
                            json={"ID": str(lease)})
        return int(result.get("result", {}).get("TTL", 0)) > 0

    def hosts(self) -> dict[str, dict]:
        return {k[len("hosts/"):]: json.loads(v) for k, v in self.get_prefix("hosts/").items()}

    def routed(self) -> list[ipaddress.IPv4Network]:
        """What any registered host routes (never to be chosen as an overlay subnet)."""
        return [ipaddress.IPv4Network(r) for h in self.hosts().values() for r in h.get("routes", ())]

    # --- IPAM ---------------------------------------------------------------------------------
    def claim_network(self, network: str, wanted: Optional[ipaddress.IPv4Network],
                      routed: Iterable[ipaddress._BaseNetwork], first_vni: int = VNI_FIRST,
                      commit: bool = True) -> NetworkClaim:
        """The network's subnet and VNI, chosen once in the cluster (the first host to ask wins)."""
        routed = list(routed)
        for _ in range(64):  # each retry means another host won a race; the claim is then read
            held = self._network_claim(network)
            if held:
                return held
            owners = {ipaddress.ip_network(k[len("subnets/"):].replace("_", "/")): v
                      for k, v in self.get_prefix("subnets/").items()}
            taken = list(owners)
            if wanted is not None:
                subnet = wanted
                clash = next((t for t in taken if subnet.overlaps(t)), None)
                if clash is not None:
                    raise ClusterError(f"network {network}: subnet {subnet} overlaps {clash}, "
                                       f"overlay network {owners[clash]}'s in the cluster")
            else:
                subnet = next(candidate_subnets(taken + routed), None)
                if subnet is None:
                    raise ClusterError(f"network {network}: the cluster's pool {GLOBAL_POOL} is used up")
            vnis = {int(k[len("vnis/"):]) for k in self.get_prefix("vnis/")}
            vni = next(v for v in range(first_vni, VNI_LAST + 1) if v not in vnis)
            if not commit:
                return NetworkClaim(network, subnet, vni)
            base = f"networks/{network}/"
            keys = [base + "subnet", f"subnets/{_subnet_key(subnet)}", f"vnis/{vni}"]
            done = self._txn([_absent(self.prefix + k) for k in keys],
                             [_put(self.prefix + keys[0], str(subnet)),
                              _put(self.prefix + base + "vni", str(vni)),
                              _put(self.prefix + keys[1], network), _put(self.prefix + keys[2], network)])
            if done.get("succeeded"):
                return NetworkClaim(network, subnet, vni)
        raise ClusterError(f"network {network}: could not claim a subnet (too much contention)")

    def _network_claim(self, network: str) -> Optional[NetworkClaim]:
        held = self.get_prefix(f"networks/{network}/")
        if f"networks/{network}/subnet" not in held:
            return None
        return NetworkClaim(network, ipaddress.IPv4Network(held[f"networks/{network}/subnet"]),
                            int(held[f"networks/{network}/vni"]))

    def addresses(self, network: str) -> dict[ipaddress.IPv4Address, str]:
        """The network's leased addresses -> "HOST CONTAINER"."""
        base = f"networks/{network}/addresses/"
        return {ipaddress.IPv4Address(k[len(base):]): v for k, v in self.get_prefix(base).items()}

    def lease_address(self, claim: NetworkClaim, host: str, container: str, lease: int,
                      reserved: Iterable[ipaddress.IPv4Address] = (),
                      wanted: Optional[ipaddress.IPv4Address] = None, commit: bool = True,
                      held: Optional[dict] = None) -> ipaddress.IPv4Address:
        """An address on the network for HOST's CONTAINER, never one another endpoint holds.
        `held`: the network's leases as last read (kept up to date here), so that leasing the
        addresses of many endpoints reads them once, not once per endpoint."""
        owner = f"{host} {container}"
        held = self.addresses(claim.network) if held is None else held
        for attempt in range(256):
            mine = [a for a, v in held.items() if v == owner]
            if mine and (wanted is None or wanted in mine):
                return wanted or mine[0]
            if wanted is not None:
                if wanted in held:
                    raise ClusterError(f"network {claim.network}: {wanted} is leased by {held[wanted]}")
                addr = wanted
            else:
                free = list(itertools.islice(candidate_addresses(claim.subnet, set(reserved) | set(held)), 64))
                if not free:
                    raise ClusterError(f"network {claim.network}: no free address in {claim.subnet}")
                # the lowest free one; after a lost race, any of the next ones, so that hosts
                # leasing at the same moment stop asking for the same address
                addr = free[0] if attempt == 0 else random.choice(free)
            key = self.prefix + f"networks/{claim.network}/addresses/{addr}"
            if not commit or self._txn([_absent(key)], [_put(key, owner, lease)]).get("succeeded"):
                held[addr] = owner
                return addr
            held.clear()
            held.update(self.addresses(claim.network))
        raise ClusterError(f"network {claim.network}: could not lease an address (too much contention)")

    # --- container names ------------------------------------------------------------------------
    def container_names(self, project: str) -> dict[str, str]:
        """Every container name of PROJECT in use in the cluster -> the host that runs it."""
        base = f"projects/{project}/containers/"
        return {k[len(base):]: v for k, v in self.get_prefix(base).items()}

    def claim_name(self, project: str, name: str, host: str, lease: int) -> Optional[str]:
        """NAME for HOST's container under its lease: None when HOST holds it now, else the host
        that does (another host won it, maybe at this very moment)."""
        key = self.prefix + f"projects/{project}/containers/{name}"
        for _ in range(8):
            if self._txn([_absent(key)], [_put(key, host, lease)]).get("succeeded"):
                return None
            holder = self.get(f"projects/{project}/containers/{name}")
            if holder is not None:
                return None if holder == host else holder
        raise ClusterError(f"container {name}: could not claim its name (too much contention)")

    def release_names(self, project: str, host: str, keep: Iterable[str] = ()) -> None:
        keep = set(keep)
        for name, holder in self.container_names(project).items():
            if holder == host and name not in keep:
                self._call(self.client.delete, self.prefix + f"projects/{project}/containers/{name}")

    def register_endpoint(self, ep: RemoteEndpoint, lease: int) -> None:
        value = json.dumps({"vtep": str(ep.vtep), "address": str(ep.address),
                            "mac": ep.mac, "names": list(ep.names)})
        self._call(self.client.put, self.prefix + f"networks/{ep.network}/endpoints/{ep.container}",
                   value, lease=_Lease(lease))

    def endpoints(self, network: str) -> tuple[RemoteEndpoint, ...]:
        base = f"networks/{network}/endpoints/"
        out = []
        for key, value in sorted(self.get_prefix(base).items()):
            d = json.loads(value)
            out.append(RemoteEndpoint(network, key[len(base):], ipaddress.IPv4Address(d["vtep"]),
                                      ipaddress.IPv4Address(d["address"]), d["mac"], tuple(d["names"])))
        return tuple(out)

    def release_endpoints(self, network: str, host: str, containers: Optional[Iterable[str]] = None) -> None:
        """HOST's endpoints on NETWORK leave (those of `containers`, or all of them): each
        endpoint and its address lease."""
        gone = None if containers is None else set(containers)

        def mine(container: str) -> bool:
            return gone is None or container in gone

        for ep in self.endpoints(network):
            if ep.host == host and mine(ep.container):
                self._call(self.client.delete, self.prefix + f"networks/{network}/endpoints/{ep.container}")
        for addr, owner in self.addresses(network).items():
            owner_host, _, container = owner.partition(" ")
            if owner_host == host and mine(container):
                self._call(self.client.delete, self.prefix + f"networks/{network}/addresses/{addr}")

    def release_host(self, host: str, networks: Iterable[str]) -> None:
        """Remove HOST's endpoints and addresses; a network left without endpoints leaves too."""
        for net in networks:
            self.release_endpoints(net, host)
            self._forget_network_if_empty(net)
        self._leave_if_idle(host)

    def _leave_if_idle(self, host: str) -> None:
        """The host leaves (its lease revoked) once its lease holds nothing but hosts/HOST."""
        values = self._call(self.client.get, self.prefix + "hosts/" + host, metadata=True)
        lease = int(values[0][1].get("lease", 0)) if values else 0
        if not lease:
            return
        ttl = self._call(self.client.post, self.client.get_url("/kv/lease/timetolive"),
                         json={"ID": str(lease), "keys": True})
        if len(ttl.get("keys", [])) <= 1:
            self._call(self.client.post, self.client.get_url("/kv/lease/revoke"), json={"ID": str(lease)})

    def _forget_network_if_empty(self, network: str) -> None:
        if self.endpoints(network) or self.get_prefix(f"networks/{network}/addresses/"):
            return
        claim = self._network_claim(network)
        if claim is None:
            return
        for key in (f"subnets/{_subnet_key(claim.subnet)}", f"vnis/{claim.vni}"):
            self._call(self.client.delete, self.prefix + key)
        self.delete_prefix(f"networks/{network}/")


def store_of(summary: Any, **kw: Any) -> Store:
    """The store of a recorded project, this host known by the VTEP it was brought up with."""
    if summary.cluster_host:
        kw.setdefault("advertise", ipaddress.IPv4Address(summary.cluster_host))
    return Store.from_url(summary.cluster, **kw)


class _Lease:
    """What etcd3gw's put(lease=) reads: an object with `id`."""

    def __init__(self, lease_id: int):
        self.id = lease_id


# --- what one `up` asks of the store ------------------------------------------------------------


@dataclass(frozen=True)
class ClusterFacts:
    """What the cluster store fixed for this host's plan (the planner reads it like host facts)."""

    url: str
    host: ipaddress.IPv4Address  # this host's underlay address: its VTEP and its name in the store
    underlay_mtu: Optional[int]
    lease: int
    claims: Mapping[str, NetworkClaim]  # network full name -> its subnet and VNI
    addresses: Mapping[tuple[str, str], ipaddress.IPv4Address]  # (network, container) -> leased
    remote: tuple[RemoteEndpoint, ...]  # other hosts' endpoints on these networks


def url_setting(flag: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    return flag or environ.get(ENV) or None


def _mtu_of(underlay: ipaddress.IPv4Address, facts: Any) -> Optional[int]:
    dev = next((a.dev for a in facts.addresses if a.address.ip == underlay), None)
    try:
        with open(f"/sys/class/net/{dev}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError, TypeError):
        return None


def advertise_setting(environ: Mapping[str, str]) -> Optional[ipaddress.IPv4Address]:
    """`COMPOSE_NET_CLUSTER_ADVERTISE`: this host's underlay (VTEP) address, as dockerd's
    `--cluster-advertise` was; unset, the address towards etcd is used."""
    text = environ.get(ADVERTISE_ENV, "").strip()
    if not text:
        return None
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        address = None
    if address is None or address.is_unspecified or address.is_multicast or address.is_loopback:
        from compose_net.errors import PlanError

        raise PlanError(f"{ADVERTISE_ENV}: {text!r} is not an IPv4 address another host can reach")
    return address


def ttl_setting(environ: Mapping[str, str]) -> int:
    """`COMPOSE_NET_CLUSTER_TTL`: seconds a dead host's endpoints outlive it (default 15)."""
    text = environ.get(TTL_ENV, "").strip()
    if not text:
        return DEFAULT_TTL
    if not text.isdigit() or not 5 <= int(text) <= 3600:
        from compose_net.errors import PlanError

        raise PlanError(f"{TTL_ENV}: {text!r} is not a number of seconds from 5 to 3600")
    return int(text)


def prepare(store: Store, url: str, project: Any, facts: Any, ttl: int = DEFAULT_TTL,
            claim: bool = True, live: Any = None) -> tuple[Any, Any]:
    """The project with its containers named uniquely in the cluster, and the host facts with
    what the store fixes for its plan (`HostFacts.cluster`): the cluster-scoped networks' subnets
    and VNIs and the addresses of this host's endpoints on them (static ones as given). `claim=False` (dry-run, check) only reads. `live`:
    the live edits to plan with (a connected or ad-hoc container gets its lease too)."""
    import dataclasses

    from compose_net import drivers
    from compose_net.plan.layout import layout as plan_layout

    host = store.underlay_address()
    if store.advertise is not None and not any(a.address.ip == host for a in facts.addresses):
        raise ClusterError(f"{ADVERTISE_ENV}: {host} is not an address of this host: nothing was changed")
    routed = [r.dst for r in facts.routes if r.dst.version == 4]
    lease = store.register_host(str(host), ttl, routed) if claim else 0
    routed += store.routed()
    project = dataclasses.replace(project, containers=_names(store, project, str(host), lease, claim))
    layout = plan_layout(project, facts, live=live)
    claims: dict[str, NetworkClaim] = {}
    addresses: dict[tuple[str, str], ipaddress.IPv4Address] = {}
    for key, net in layout.networks.items():
        if net.external or not drivers.get(net.driver).cluster_scoped:
            continue
        v4 = net.subnet(4)
        wanted = v4.subnet if v4 is not None and not v4.auto else None
        claim_ = store.claim_network(net.name, wanted, [] if wanted else routed, commit=claim)
        claims[net.name] = claim_
        gateway = v4.gateway if wanted is not None and v4.gateway else next(claim_.subnet.hosts())
        taken = {gateway}
        held = store.addresses(net.name)
        for box in layout.box_order:
            for it in box.ifaces:
                if it.net.key != key:
                    continue
                static = it.layout.ipv4.ip if it.layout.ipv4_note == "static ipv4_address" else None
                addr = store.lease_address(claim_, str(host), box.container.name, lease, reserved=taken,
                                           wanted=static, commit=claim, held=held)
                addresses[(net.name, box.container.name)] = addr
                taken.add(addr)  # without claims, the next endpoint must not get it too
    remote = tuple(ep for name in claims for ep in store.endpoints(name) if ep.host != str(host))
    fixed = ClusterFacts(url, host, _mtu_of(host, facts), lease, claims, addresses, remote)
    return project, dataclasses.replace(facts, cluster=fixed)


def _names(store: Store, project: Any, host: str, lease: int, claim: bool) -> tuple:
    """The project's containers named uniquely in the cluster: a service's replicas keep the
    indexes this host holds and take the lowest free ones beyond (`up db` on a second host makes
    PROJECT-db-2). A fixed `container_name` another host holds is refused."""
    import dataclasses
    import itertools

    held = store.container_names(project.name)

    def take(name: str) -> bool:
        holder = held.get(name)
        if holder is None and claim:
            holder = held[name] = store.claim_name(project.name, name, host, lease) or host
        return holder in (None, host)

    out: list = []
    for service, group in itertools.groupby(project.containers, key=lambda c: c.service):
        group = list(group)
        if project.services[service].container_name:
            for c in group:
                if not take(c.name):
                    raise ClusterError(f"container name {c.name} is in use on host {held[c.name]}: "
                                       "nothing was changed")
            out.extend(group)
            continue
        prefix = f"{project.name}-{service}-"
        mine = sorted(int(n[len(prefix):]) for n, h in held.items()
                      if h == host and n.startswith(prefix) and n[len(prefix):].isdigit())
        chosen: list[int] = []
        for index in itertools.chain(mine, itertools.count(1)):
            if len(chosen) == len(group):
                break
            if index not in chosen and take(prefix + str(index)):
                chosen.append(index)
        out.extend(dataclasses.replace(c, name=prefix + str(i), index=i) for c, i in zip(group, sorted(chosen)))
    return tuple(out)


def register(store: Store, summary: Any, ttl: int = DEFAULT_TTL) -> int:
    """After `up` (and by the background process when the host's lease was lost): this host,
    its container names and its endpoints on the project's overlay networks, as the recorded
    state has them, under the host's lease. Only what the store lacks or holds otherwise is
    written (every write wakes every other host's watch); what is no longer here is removed."""
    import logging

    from compose_net.probe import routed_v4

    host = store.underlay_address()
    lease = store.register_host(str(host), ttl, routed_v4())
    local = {c.name: c for c in summary.containers if c.host is None}
    held = store.container_names(summary.project)
    if any(holder == str(host) and name not in local for name, holder in held.items()):
        store.release_names(summary.project, str(host), keep=local)
    for name in local:
        if held.get(name) != str(host) and store.claim_name(summary.project, name, str(host), lease):
            # taken by another host while this one had lost its lease
            logging.getLogger("compose_net.cluster").warning(
                "container %s: its name is in use on host %s too", name, held.get(name))
    for net in (n.name for n in summary.networks if n.vxlan is not None and not n.external):
        wanted = {c.name: RemoteEndpoint(net, c.name, host, i.ipv4.ip, i.mac, tuple(i.aliases))
                  for c in local.values() for i in c.interfaces if i.network == net and i.ipv4 is not None}
        have = {ep.container: ep for ep in store.endpoints(net) if ep.host == str(host)}
        for name, ep in wanted.items():
            if have.get(name) != ep:
                store.register_endpoint(ep, lease)
        if have.keys() - wanted.keys():
            store.release_endpoints(net, str(host), have.keys() - wanted.keys())
    return lease


def leave(store: Store, summary: Any) -> None:
    """`down`: this host's endpoints leave; a network without endpoints leaves the cluster."""
    host = str(store.underlay_address())
    store.release_names(summary.project, host)
    store.release_host(host, [n.name for n in summary.networks if n.vxlan is not None])


def remote_containers(project: str, prefixes: Mapping[str, int], remote: Iterable[RemoteEndpoint],
                      local: Iterable[str]) -> tuple:
    """Other hosts' endpoints as recorded-state containers (`host` set, no namespace here): the
    names the DNS server answers and ps/inspect show. `prefixes`: network -> its prefix length."""
    from compose_net import naming
    from compose_net.summary import ContainerState, InterfaceState

    local = set(local)
    merged: dict[str, list] = {}
    for ep in sorted(remote, key=lambda e: (e.container, e.network)):
        if ep.network not in prefixes or ep.container in local:
            continue
        iface = InterfaceState(
            network=ep.network, ifname=f"eth{len(merged.get(ep.container, ()))}", host_ifname=None,
            mac=ep.mac, ipv4=ipaddress.IPv4Interface((int(ep.address), prefixes[ep.network])), ipv6=None,
            gateway=None, gateway6=None, default_route=False, default_route6=False, aliases=ep.names,
            link_local=())
        merged.setdefault(ep.container, []).append((ep, iface))
    return tuple(ContainerState(name=name, service=items[0][0].names[0] if items[0][0].names else name,
                                host=items[0][0].host, id=naming.container_id(project, name),
                                interfaces=tuple(i for _, i in items))
                 for name, items in merged.items())


def merged(summary: Any, remote: Iterable[RemoteEndpoint]) -> Any:
    """The recorded state with `remote` as the other hosts' endpoints (pure)."""
    import dataclasses

    local = [c for c in summary.containers if c.host is None]
    prefixes = {n.name: s.subnet.prefixlen for n in summary.networks if n.vxlan
                for s in n.subnets if s.subnet.version == 4}
    return dataclasses.replace(summary, containers=tuple(local) + remote_containers(
        summary.project, prefixes, remote, (c.name for c in local)))


def current(summary: Any) -> Any:
    """For ps and network inspect: the recorded state with the store's endpoints as they are now
    (ClusterError when the store cannot be asked)."""
    if not summary.cluster:
        return summary
    store = store_of(summary, timeout=2)
    me = str(store.underlay_address())
    nets = [n.name for n in summary.networks if n.vxlan is not None]
    return merged(summary, [ep for net in nets for ep in store.endpoints(net) if ep.host != me])
