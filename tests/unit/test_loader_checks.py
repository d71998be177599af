"""Stage 6: semantic checks; every problem at once as FILE:LINE: key.path: message."""

import textwrap

import pytest

from compose_net.errors import ConfigErrors
from compose_net.loader import LoadOptions, load


def errors(tmp_path, text, **kw):
    (tmp_path / "compose.yml").write_text(textwrap.dedent(text))
    with pytest.raises(ConfigErrors) as e:
        load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="p", **kw))
    return [str(x) for x in e.value.errors]


def ok(tmp_path, text, **kw):
    (tmp_path / "compose.yml").write_text(textwrap.dedent(text))
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="p", **kw))


def test_all_problems_of_a_file_at_once(tmp_path):
    assert errors(tmp_path, """\
        services:
          web:
            image: x
            networks:
              backnet: {}
            ports: ["70000:80", "8080:80/icmp"]
            depends_on: [ghost]
          api:
            image: x
            network_mode: "service:nobody"
            links: [web:w, phantom]
        networks:
          front:
            driver: brigde
        """) == [
        'compose.yml:5: services.web.networks.backnet: undefined network "backnet"',
        "compose.yml:6: services.web.ports[0]: host port 70000 is out of range 0-65535",
        'compose.yml:6: services.web.ports[1]: invalid protocol "icmp": expected tcp, udp or sctp',
        'compose.yml:7: services.web.depends_on.ghost: depends on undefined service "ghost"',
        'compose.yml:10: services.api.network_mode: network_mode refers to undefined service "nobody"',
        'compose.yml:11: services.api.links[1]: links to undefined service "phantom"',
        'compose.yml:14: networks.front.driver: unknown network driver "brigde" (did you mean "bridge"?)',
    ]


def test_static_addresses(tmp_path):
    assert errors(tmp_path, """\
        services:
          a:
            image: x
            networks:
              n: {ipv4_address: 10.1.0.5}
              m: {ipv4_address: 10.9.0.5}
              nosub: {ipv4_address: 10.3.0.5}
          b:
            image: x
            networks:
              n: {ipv4_address: 10.1.0.5, ipv6_address: "fd00::5"}
          c:
            image: x
            scale: 2
            networks:
              n: {ipv4_address: 10.1.0.9}
        networks:
          n: {ipam: {config: [{subnet: 10.1.0.0/16}]}}
          m: {ipam: {config: [{subnet: 10.2.0.0/16}]}}
          nosub: {}
        """) == [
        'compose.yml:6: services.a.networks.m.ipv4_address: address 10.9.0.5 is outside the subnets of network "m" (10.2.0.0/16)',
        "compose.yml:7: services.a.networks.nosub.ipv4_address: static address 10.3.0.5 needs a user-configured IPv4 subnet in networks.nosub.ipam.config",
        "compose.yml:11: services.b.networks.n.ipv4_address: address 10.1.0.5 is already used by services.a.networks.n.ipv4_address",
        'compose.yml:11: services.b.networks.n.ipv6_address: static IPv6 address fd00::5 but network "n" does not set enable_ipv6: true',
        "compose.yml:11: services.b.networks.n.ipv6_address: static address fd00::5 needs a user-configured IPv6 subnet in networks.n.ipam.config",
        "compose.yml:16: services.c.networks.n.ipv4_address: static address 10.1.0.9 cannot be shared by 2 replicas",
    ]


def test_ipam_and_overlaps_exact(tmp_path):
    got = errors(tmp_path, """\
        services:
          a: {image: x, networks: [x, y, z]}
        networks:
          x:
            ipam:
              config:
                - subnet: 10.0.0.0/16
                  gateway: 10.1.0.1
                  aux_addresses: {r: 10.0.0.2, far: 192.168.0.1}
          y:
            ipam:
              config:
                - subnet: 10.5.0.1/16
                - subnet: banana
                - gateway: 10.6.0.1
          z:
            ipam: {config: [{subnet: 10.0.0.0/8}]}
        """)
    assert got == [
        "compose.yml:7: networks.x.ipam.config[0].subnet: subnet 10.0.0.0/16 overlaps 10.0.0.0/8 of networks.z.ipam.config[0].subnet",
        "compose.yml:8: networks.x.ipam.config[0].gateway: gateway 10.1.0.1 is outside subnet 10.0.0.0/16",
        "compose.yml:9: networks.x.ipam.config[0].aux_addresses.far: address 192.168.0.1 is outside subnet 10.0.0.0/16",
        'compose.yml:13: networks.y.ipam.config[0].subnet: subnet "10.5.0.1/16" has host bits set (did you mean 10.5.0.0/16?)',
        'compose.yml:14: networks.y.ipam.config[1].subnet: invalid subnet "banana": expected CIDR like 172.28.0.0/16',
        "compose.yml:15: networks.y.ipam.config[2].gateway: gateway 10.6.0.1 needs a subnet in the same ipam.config entry",
    ]


def test_cycles_are_named(tmp_path):
    got = errors(tmp_path, """\
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, depends_on: [c]}
          c: {image: x, links: ["a:alias"]}
          d: {image: x, network_mode: "service:d"}
        """)
    assert got == [
        "compose.yml:4: services.c.links[0]: dependency cycle: a -> b -> c -> a",
        "compose.yml:5: services.d.network_mode: network_mode \"service:d\": a service cannot share its own network namespace",
    ]


def test_names_replicas_and_modes(tmp_path):
    got = errors(tmp_path, """\
        services:
          a: {image: x, container_name: same}
          b: {image: x, container_name: same}
          c: {image: x, container_name: solo, deploy: {replicas: 2}}
          d: {image: x, scale: 2, deploy: {replicas: 3}}
          e: {image: x, scale: -1}
          f: {image: x, network_mode: host, networks: [default]}
          g: {image: x, network_mode: bogus}
        """)
    assert got == [
        'compose.yml:3: services.b.container_name: container name "same" is already used by service "a"',
        'compose.yml:4: services.c.container_name: container_name "solo" cannot be used with 2 replicas (names must be unique)',
        "compose.yml:5: services.d.scale: scale (2) and deploy.replicas (3) differ",
        "compose.yml:6: services.e.scale: replicas cannot be negative (-1)",
        'compose.yml:7: services.f.network_mode: network_mode "host" cannot be used together with networks',
        'compose.yml:8: services.g.network_mode: invalid network_mode "bogus": expected host, none, bridge, service:NAME or container:NAME',
    ]


def test_network_driver_options(tmp_path):
    got = errors(tmp_path, """\
        services:
          a: {image: x, networks: [b, m, i, e]}
        networks:
          b:
            driver_opts:
              com.docker.network.bridge.name: this-name-is-too-long
              com.docker.network.driver.mtu: big
          m: {driver: macvlan, driver_opts: {parent: eth0, macvlan_mode: bridgy}}
          i: {driver: ipvlan, driver_opts: {ipvlan_mode: l4, ipvlan_flag: loud}}
          e: {external: true, driver: bridge, ipam: {config: []}}
        """)
    assert got == [
        'compose.yml:6: networks.b.driver_opts.com.docker.network.bridge.name: bridge name "this-name-is-too-long" is longer than 15 bytes',
        'compose.yml:7: networks.b.driver_opts.com.docker.network.driver.mtu: MTU must be an integer, not "big"',
        'compose.yml:8: networks.m.driver_opts.macvlan_mode: invalid macvlan mode "bridgy": expected bridge, private, vepa, passthru',
        'compose.yml:9: networks.i.driver_opts.ipvlan_flag: invalid ipvlan flag "loud": expected bridge, private, vepa',
        'compose.yml:9: networks.i.driver_opts.ipvlan_mode: invalid ipvlan mode "l4": expected l2, l3, l3s',
        'compose.yml:10: networks.e.driver: external network "e" cannot set driver (only name)',
        'compose.yml:10: networks.e.ipam: external network "e" cannot set ipam (only name)',
    ]


def test_ports_and_host_bindings(tmp_path):
    got = errors(tmp_path, """\
        services:
          a:
            image: x
            ports: ["8080:80", "9000-9001:90-92", "127.0.0.1:53:53/udp", "2-1:2-1"]
          b:
            image: x
            ports: ["8080:81", "127.0.0.1:53:53/udp", "53:53/tcp", "0.0.0.0:6000:60"]
          c:
            image: x
            scale: 2
            ports: ["7000:70", "7100-7101:71"]
            dns: [8.8.8.8, dns.example.com]
            expose: ["80/tcp", "eighty"]
            extra_hosts: ["nohost", "h:999.1.1.1", "gw:host-gateway"]
            mac_address: zz:zz
            networks:
              default: {interface_name: a-really-long-ifname, mac_address: "02:42:ac:11:00:02"}
        """)
    assert got == [
        "compose.yml:4: services.a.ports[1]: host port range 9000-9001 and container port range 90-92 differ in size",
        "compose.yml:4: services.a.ports[3]: container port range 2-1 is reversed",
        "compose.yml:4: services.a.ports[3]: host port range 2-1 is reversed",
        "compose.yml:7: services.b.ports[0]: host port 8080/tcp on all addresses is already published by services.a.ports[0]",
        "compose.yml:7: services.b.ports[1]: host port 53/udp on 127.0.0.1 is already published by services.a.ports[2]",
        "compose.yml:11: services.c.ports[0]: published port 7000 cannot be bound by 2 replicas",
        'compose.yml:12: services.c.dns[1]: dns server "dns.example.com" must be an IP address',
        'compose.yml:13: services.c.expose[1]: invalid exposed port "eighty": expected PORT[-PORT][/PROTOCOL]',
        'compose.yml:14: services.c.extra_hosts[0]: invalid extra_hosts entry "nohost": expected HOST:IP or HOST=IP',
        'compose.yml:14: services.c.extra_hosts[1]: invalid address "999.1.1.1" for extra host "h"',
        'compose.yml:15: services.c.mac_address: invalid MAC address "zz:zz"',
        'compose.yml:17: services.c.networks.default.interface_name: interface name "a-really-long-ifname" is longer than 15 bytes',
    ]


def test_profiles_and_references(tmp_path):
    text = """\
        services:
          web:
            image: x
            depends_on:
              dbg: {condition: service_started}
              opt: {condition: service_started, required: false}
          side: {image: x, network_mode: "service:dbg"}
          dbg: {image: x, profiles: [debug]}
        """
    assert errors(tmp_path, text) == [
        'compose.yml:5: services.web.depends_on.dbg: depends on service "dbg", which no active profile enables',
        'compose.yml:7: services.side.network_mode: network_mode refers to service "dbg", which no active profile enables',
    ]
    result = ok(tmp_path, text, profiles=("debug",))
    assert list(result.project.services) == ["web", "side", "dbg"]


def test_a_valid_project_passes(tmp_path):
    result = ok(tmp_path, """\
        services:
          web:
            image: x
            ports: ["8080:80", "127.0.0.1:8081:80", "8000-8010:90", "udp1:53/udp"]
            networks:
              front: {ipv4_address: 172.30.0.10, ipv6_address: "fd00:1::10"}
          api: {image: x, ports: ["8082:80", "53:53/udp"], depends_on: [web], links: ["web:www"]}
        networks:
          front:
            enable_ipv6: true
            ipam: {config: [{subnet: 172.30.0.0/24}, {subnet: "fd00:1::/64"}]}
        """.replace('"udp1:53/udp"', '"53:53/tcp"'))
    assert result.project.services["web"].networks[0].ipv4_address.exploded == "172.30.0.10"


def test_wildcard_host_addresses_collide_with_specific_ones(tmp_path):
    got = errors(tmp_path, """\
        services:
          a: {image: x, ports: ["0.0.0.0:80:80", "[::1]:81:81", "127.0.0.1:82:82"]}
          b: {image: x, ports: ["127.0.0.1:80:80", "127.0.0.1:81:81", "127.0.0.2:82:82"]}
          c: {image: x, ports: ["[::]:82:82"]}
        """)
    assert got == [
        "compose.yml:3: services.b.ports[0]: host port 80/tcp on 127.0.0.1 is already published by services.a.ports[0]",
    ]


def test_priorities_must_be_whole_numbers(tmp_path):
    assert errors(tmp_path, """\
        services:
          a:
            image: x
            networks:
              default: {priority: .inf, gw_priority: 1.5}
        """) == [
        "compose.yml:5: services.a.networks.default.gw_priority: gw_priority must be an integer, not 1.5",
        "compose.yml:5: services.a.networks.default.priority: priority must be an integer, not inf",
    ]
    result = ok(tmp_path, "services:\n  a:\n    image: x\n    networks:\n      default: {priority: 2.0}\n")
    assert result.project.services["a"].networks[0].priority == 2


def test_host_port_zero_is_ephemeral(tmp_path):
    result = ok(tmp_path, """\
        services:
          a: {image: x, ports: ["0:80"], scale: 2}
          b: {image: x, ports: ["0:80"]}
        """)
    assert result.project.services["a"].ports[0].published is None


def test_replicas_are_bounded(tmp_path):
    assert errors(tmp_path, """\
        services:
          a: {image: x, deploy: {replicas: 1e300}}
          b: {image: x, scale: 10001}
        """) == [
        'compose.yml:2: services.a.deploy.replicas: replicas "100000000000000005250476...": more than 10000 are not supported',
        'compose.yml:3: services.b.scale: replicas "10001": more than 10000 are not supported',
    ]


def test_clashing_ranges_give_one_message(tmp_path):
    assert errors(tmp_path, """\
        services:
          a: {image: x, ports: ["8000-8100:8000-8100"]}
          b: {image: x, ports: ["8050-8150:8050-8150"]}
        """) == ["compose.yml:3: services.b.ports[0]: host port 8050/tcp on all addresses is already published by services.a.ports[0]"]



def test_names_at_their_limits_and_forms_docker_accepts(tmp_path):
    # what Docker accepts stays accepted: "_" in DNS names, rooted and "." search domains,
    # NAME and NAME:VALUE options, names of exactly the maximum length
    c63, s59 = "c" * 63, "s" * 59
    result = ok(tmp_path, f"""\
        services:
          my_api:
            image: x
            hostname: {"h" * 32}.{"h" * 31}
            domainname: eu-1.example.org
            dns_search: [corp.example., ".", x-1.example]
            dns_opt: [ndots:2, rotate, "timeout:1", single-request-reopen]
            extra_hosts: ["my_host.local:10.0.0.5", "gw=host-gateway"]
            networks:
              front: {{aliases: [db_primary, api.internal]}}
            sysctls: {{net.ipv4.ip_local_port_range: "1024 65000", net/ipv4/conf/eth0.100/forwarding: 1}}
          named:
            image: x
            container_name: {c63}
            networks: [front]
          {s59}:
            image: x
            network_mode: bridge
            links: ["named:api_v1"]
        networks:
          front: {{name: shop.front_net}}
        """)
    assert len(result.project.services["my_api"].hostname) == 64
    assert {c.name for c in result.project.containers} == {"p-my_api-1", c63, f"p-{s59}-1"}


def test_names_just_over_their_limits(tmp_path):
    c64, h65, s60 = "c" * 64, f"{'h' * 32}.{'h' * 32}", "s" * 60
    assert errors(tmp_path, f"""\
        services:
          a:
            image: x
            container_name: {c64}
            hostname: {h65}
            domainname: -bad.example
          {s60}:
            image: x
        """) == [
        f'compose.yml:4: services.a.container_name: container name "{c64}" is 64 bytes long, more than 63 '
        "(a name the embedded DNS answers)",
        f'compose.yml:5: services.a.hostname: hostname "{h65}" is 65 bytes long, more than 64 (the kernel\'s host name)',
        'compose.yml:6: services.a.domainname: invalid domainname "-bad.example": use labels of letters, digits and '
        '"-" (not first or last), separated by "."',
        f'compose.yml:7: services.{s60}: container name "p-{s60}-1" is 64 bytes long, more than 63 (a name the '
        "embedded DNS answers): shorten the project or service name, or set container_name",
    ]


def test_link_names_refuse_control_characters(tmp_path):
    assert errors(tmp_path, """\
        services:
          a:
            image: x
            networks:
              n: {interface_name: "eth\\x01"}
        networks:
          n: {driver_opts: {com.docker.network.bridge.name: "br\\x1b0"}}
        """) == [
        'compose.yml:5: services.a.networks.n.interface_name: invalid interface name "eth\\x01"',
        'compose.yml:7: networks.n.driver_opts.com.docker.network.bridge.name: invalid bridge name "br\\x1b0"',
    ]


def test_env_files_are_found_where_compose_looks(tmp_path):
    # relative to the project directory for the -f files (not the current directory), to its own
    # directory for a file that `extends` or `include` pulls in
    proj = tmp_path / "proj"
    for path, text in {
        "proj/compose.yml": "include: [sub/compose.yml]\nservices:\n  web:\n    extends: {file: ../base/common.yml, service: common}\n"
                            "    env_file: [web.env, {path: gone.env, required: \"false\"}]\n",
        "proj/web.env": "A=1\n",
        "proj/sub/compose.yml": "services:\n  sub:\n    image: x\n    env_file: sub.env\n",
        "proj/sub/sub.env": "B=1\n",
        "base/common.yml": "services:\n  common:\n    image: x\n    env_file: [common.env]\n",
        "base/common.env": "C=1\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    result = load(LoadOptions(files=("proj/compose.yml",), cwd=str(tmp_path), environ={}, project_name="p"))
    assert set(result.project.services) == {"web", "sub"}
    (tmp_path / "base/common.env").unlink()
    (tmp_path / "proj/sub/sub.env").unlink()
    (tmp_path / "proj/web.env").unlink()
    (tmp_path / "proj/web.env").mkdir()
    with pytest.raises(ConfigErrors) as e:
        load(LoadOptions(files=("proj/compose.yml",), cwd=str(tmp_path), environ={}, project_name="p"))
    assert [str(x) for x in e.value.errors] == [
        '../base/common.yml:4: services.web.env_file[0]: env file "common.env" not found (next to "../base")',
        'proj/compose.yml:5: services.web.env_file[1]: env file "web.env" is a directory',
        'sub/compose.yml:4: services.sub.env_file: env file "sub.env" not found (next to "sub")',
    ]


def test_what_docker_compose_accepts_of_images_volumes_and_platforms(tmp_path):
    result = ok(tmp_path, """\
        services:
          built: {build: ., platform: linux/arm64}
          both: {image: x, build: {context: ., platforms: [linux/amd64, linux/arm64]}, platform: linux/arm64}
          model: {provider: {type: model, options: {model: ai/smollm2}}}
          vols:
            image: x
            volumes:
              - /data
              - ./src:/src:ro
              - named:/var/lib/x:rw,z
              - "c:\\\\data:/data"
              - "${HOME:-/root}:/home"
              - {type: volume, source: named, target: /n}
              - {type: bind, source: ., target: /b}
        volumes:
          named: {}
        """)
    assert set(result.project.services) == {"built", "both", "model", "vols"}


def test_addresses_take_no_zone(tmp_path):
    # Python's ipaddress would keep "%x y" as an IPv6 zone; Docker takes no zone anywhere
    got = errors(tmp_path, """\
        services:
          a:
            image: x
            ports: ["[fe80::1%lo]:8080:80"]
            networks:
              n: {ipv6_address: "fd00:1::5%x y", link_local_ips: ["fe80::9%eth0"]}
        networks:
          n: {enable_ipv6: true, ipam: {config: [{subnet: "fd00:1::%x/64"}]}}
        """)
    assert got == [
        'compose.yml:4: services.a.ports[0]: invalid host address "fe80::1%lo"',
        'compose.yml:6: services.a.networks.n.ipv6_address: invalid IPv6 address "fd00:1::5%x y"',
        'compose.yml:6: services.a.networks.n.link_local_ips[0]: invalid IP address "fe80::9%eth0"',
        'compose.yml:8: networks.n.ipam.config[0].subnet: invalid subnet "fd00:1::%x/64": expected CIDR like 172.28.0.0/16',
    ]
