"""Stage 7: normalized data → model.Project, and Project.locate for later stages."""

import ipaddress

from compose_net.loader import LoadOptions, load
from compose_net.model import Dependency, ExtraHost, Link, PortMapping

COMPOSE = """\
name: shop
services:
  web:
    image: nginx
    ports:
      - "8080:80"
      - "127.0.0.1:9000-9001:9000-9001/udp"
    networks:
      front:
        aliases: [www]
        ipv4_address: 172.30.0.10
        priority: 5
        mac_address: 02-42-AC-1E-00-0A
      back:
    depends_on: [db]
    links: ["db:database"]
    extra_hosts: ["gw:host-gateway"]
    dns: [10.0.0.53]
    sysctls: [net.ipv4.ip_forward=1]
  db:
    image: pg
    deploy: {replicas: 2}
  named:
    image: x
    container_name: fixed
    network_mode: host
networks:
  front:
    ipam:
      config:
        - subnet: 172.30.0.0/24
          gateway: 172.30.0.254
          aux_addresses: {router: 172.30.0.2}
  back:
    internal: true
    driver_opts: {com.docker.network.driver.mtu: 1400}
"""


def project(tmp_path):
    (tmp_path / "compose.yml").write_text(COMPOSE)
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={})).project


def test_model_values(tmp_path):
    p = project(tmp_path)
    assert p.name == "shop" and p.working_dir == str(tmp_path)
    assert list(p.services) == ["web", "db", "named"]
    assert set(p.networks) == {"front", "back", "default"}
    web = p.services["web"]
    front, back = web.networks
    assert front.network == "front" and front.aliases == ("www",) and front.priority == 5
    assert front.ipv4_address == ipaddress.IPv4Address("172.30.0.10")
    assert front.mac_address == "02:42:ac:1e:00:0a" and front.order == 0 and back.order == 1
    assert web.ports == (
        PortMapping(target=80, target_end=80, published=8080, published_end=8080, keypath="services.web.ports[0]"),
        PortMapping(target=9000, target_end=9001, published=9000, published_end=9001,
                    host_ip=ipaddress.ip_address("127.0.0.1"), protocol="udp", keypath="services.web.ports[1]"),
    )
    assert web.depends_on == (Dependency("db"),)
    assert web.links == (Link("db", "database"),)
    assert web.extra_hosts == (ExtraHost("gw", "host-gateway", keypath="services.web.extra_hosts[0]"),)
    assert web.dns == (ipaddress.ip_address("10.0.0.53"),)
    assert web.sysctls == {"net.ipv4.ip_forward": "1"}
    assert p.services["named"].network_mode == "host" and p.services["named"].networks == ()
    pool = p.networks["front"].ipam_pools[0]
    assert pool.subnet == ipaddress.ip_network("172.30.0.0/24")
    assert pool.gateway == ipaddress.ip_address("172.30.0.254")
    assert pool.aux_addresses == {"router": ipaddress.ip_address("172.30.0.2")}
    assert p.networks["back"].internal and p.networks["back"].driver_opts == {"com.docker.network.driver.mtu": "1400"}
    assert p.networks["front"].name == "shop_front" and p.networks["default"].name == "shop_default"
    assert [c.name for c in p.containers] == ["shop-web-1", "shop-db-1", "shop-db-2", "fixed"]


def test_locate_any_key_path(tmp_path):
    p = project(tmp_path)
    assert p.locate("services.web.networks.front.ipv4_address") == ("compose.yml", 11)
    assert p.locate("services.web.ports[1]") == ("compose.yml", 7)
    assert p.locate("networks.front.ipam.config[0].subnet") == ("compose.yml", 31)
    # paths that exist only after normalization fall back to their nearest written ancestor
    assert p.locate("services.web.networks.back.aliases") == ("compose.yml", 14)
    assert p.locate("services.db.networks.default") == ("compose.yml", 20)
    assert p.locate("networks.default") == ("compose.yml", 27)
    assert p.locate("services.web.depends_on.db") == ("compose.yml", 15)


def test_frozen(tmp_path):
    import dataclasses

    import pytest

    p = project(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.services["web"].replicas = 3  # type: ignore[misc]
