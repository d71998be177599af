"""views: ps / ls / network ls / network inspect data from recorded states (project.json)."""

from __future__ import annotations

import copy
import json

from compose_net import views
from compose_net.summary import from_data

SHOP_DATA = {
    "version": 1, "project": "shop", "group": 4242, "table": "cn-shop",
    "working_dir": "/srv/shop", "files": ["/srv/shop/compose.yml"], "created": "2026-11-28T10:00:00Z",
    "networks": [
        {"name": "shop_front", "key": "front", "id": "a" * 64, "driver": "bridge", "bridge": "cn-1a2b3c4d",
         "parent": None, "mode": None, "internal": False, "external": False, "masquerade": True, "icc": True,
         "mtu": None, "enable_ipv6": False, "labels": {"tier": "web"},
         "subnets": [{"subnet": "172.18.0.0/16", "gateway": "172.18.0.1", "ip_range": None}]},
        {"name": "shop_back", "key": "back", "id": "b" * 64, "driver": "bridge", "bridge": "cn-2b3c4d5e",
         "parent": None, "mode": None, "internal": True, "external": False, "masquerade": False, "icc": False,
         "mtu": 1400, "enable_ipv6": True, "labels": {},
         "subnets": [{"subnet": "172.19.0.0/16", "gateway": "172.19.0.1", "ip_range": "172.19.5.0/24"},
                     {"subnet": "fd00:1::/64", "gateway": "fd00:1::1", "ip_range": None}]},
        {"name": "shared_net", "key": "shared", "id": "c" * 64, "driver": "bridge", "bridge": "cn-3c4d5e6f",
         "internal": False, "external": True, "masquerade": True, "icc": True, "enable_ipv6": False, "labels": {},
         "subnets": [{"subnet": "10.50.0.0/24", "gateway": "10.50.0.1", "ip_range": None}]},
    ],
    "containers": [
        {"name": "shop-web-1", "service": "web", "index": 1, "id": "1" * 64, "netns": "shop-web-1",
         "network_mode": None, "shares": None, "hostname": "111111111111",
         "interfaces": [
             {"network": "shop_front", "ifname": "eth0", "host_ifname": "veth1a2b3c4d", "mac": "02:42:ac:12:00:02",
              "ipv4": "172.18.0.2/16", "ipv6": None, "gateway": "172.18.0.1", "default_route": True,
              "aliases": ["web", "shop-web-1"]},
             {"network": "shop_back", "ifname": "eth1", "host_ifname": "veth2b3c4d5e", "mac": "02:42:ac:13:00:02",
              "ipv4": "172.19.0.2/16", "ipv6": "fd00:1::2/64", "gateway": "172.19.0.1", "default_route": False,
              "aliases": ["web"]}],
         "ports": [{"protocol": "tcp", "host_ip": None, "published": 8080, "published_end": 8080,
                    "target": 80, "target_end": 80},
                   {"protocol": "udp", "host_ip": "127.0.0.1", "published": 9000, "published_end": 9002,
                    "target": 9000, "target_end": 9002}],
         "expose": ["3000", "80"]},
        {"name": "shop-side-1", "service": "side", "index": 1, "id": "2" * 64, "netns": "shop-web-1",
         "network_mode": "service:web", "shares": "shop-web-1", "interfaces": [], "ports": [], "expose": []},
        {"name": "shop-db-1", "service": "db", "index": 1, "id": "3" * 64, "netns": "shop-db-1",
         "network_mode": None, "shares": None,
         "interfaces": [{"network": "shared_net", "ifname": "eth0", "host_ifname": "veth3", "mac": "02:42:0a:32:00:03",
                         "ipv4": "10.50.0.3/24", "ipv6": None, "gateway": "10.50.0.1", "default_route": True,
                         "aliases": ["db"]}],
         "ports": [], "expose": []},
    ],
}

# The external network's owner: a `network create` one-network project.
STANDALONE_DATA = {
    "version": 1, "project": "shared_net", "table": "cn-shared_net", "standalone": True, "files": [],
    "created": "2026-11-28T09:00:00Z",
    "networks": [{"name": "shared_net", "key": None, "id": "c" * 64, "driver": "bridge", "bridge": "cn-3c4d5e6f",
                  "internal": False, "external": False, "masquerade": True, "icc": True, "enable_ipv6": False,
                  "labels": {}, "subnets": [{"subnet": "10.50.0.0/24", "gateway": "10.50.0.1", "ip_range": None}]}],
    "containers": [],
}


SHOP = from_data(SHOP_DATA)
STANDALONE = from_data(STANDALONE_DATA)


def test_ps_rows_one_row_per_interface_with_ports_like_docker():
    rows = views.ps_rows(SHOP)
    assert rows[0] == views.PS_HEADER
    assert rows[1] == ["shop-web-1", "web", "running", "shop-web-1", "shop_front", "eth0", "172.18.0.2/16", "",
                       "02:42:ac:12:00:02", "0.0.0.0:8080->80/tcp, 127.0.0.1:9000-9002->9000-9002/udp, 3000/tcp"]
    assert rows[2] == ["", "", "", "", "shop_back", "eth1", "172.19.0.2/16", "fd00:1::2/64", "02:42:ac:13:00:02", ""]
    # a sidecar sharing web's namespace shows the mode and web's namespace
    assert rows[3] == ["shop-side-1", "side", "running", "shop-web-1", "service:web", "", "", "", "", ""]
    assert rows[4][:7] == ["shop-db-1", "db", "running", "shop-db-1", "shared_net", "eth0", "10.50.0.3/24"]
    assert len(rows) == 5


def test_ps_and_ls_say_what_the_kernel_lacks():
    from compose_net.plan import ops as O

    missing = [(O.NetnsCreate("container:shop-db-1", "shop-db-1"), "namespace shop-db-1 is missing"),
               (O.FileWrite("container:shop-db-1", "/etc/netns/shop-db-1/hosts", ""), "/etc/netns/shop-db-1/hosts differs"),
               (O.NftApply("firewall", "inet", "cn-shop", "{}"), "table cn-shop differs")]
    health = views.container_health(missing)
    assert health == {"shop-db-1": ["namespace shop-db-1 is missing", "/etc/netns/shop-db-1/hosts differs"]}
    rows = views.ps_rows(SHOP, health)
    assert rows[4][2] == "degraded" and rows[1][2] == "running"
    assert views.ps_problems(SHOP, health) == [
        "shop-db-1: namespace shop-db-1 is missing; /etc/netns/shop-db-1/hosts differs"]
    data = {c["Name"]: c for c in views.ps_json(SHOP, health)}
    assert data["shop-db-1"]["State"] == "degraded" and data["shop-web-1"]["State"] == "running"
    assert views.ls_json([SHOP], {"shop": health})[0]["Status"] == "degraded(2/3)"
    assert views.ls_json([SHOP], {"shop": {}})[0]["Status"] == "running(3)"


def test_ps_json_fields():
    data = views.ps_json(SHOP)
    web = data[0]
    assert web["Name"] == "shop-web-1" and web["Project"] == "shop" and web["Service"] == "web"
    assert web["ID"] == "1" * 64 and web["Namespace"] == "shop-web-1"
    assert web["Networks"] == "shop_front,shop_back" and web["NetworkMode"] == "shop_front"
    # the ports lead to eth0 (IPv4 only): no [::] binding, although eth1 has an IPv6 address
    assert web["Ports"].startswith("0.0.0.0:8080->80/tcp, 127.0.0.1")
    assert web["Publishers"] == [
        {"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": 8080, "Protocol": "tcp"},
        {"URL": "127.0.0.1", "TargetPort": 9000, "PublishedPort": 9000, "Protocol": "udp"},
        {"URL": "127.0.0.1", "TargetPort": 9001, "PublishedPort": 9001, "Protocol": "udp"},
        {"URL": "127.0.0.1", "TargetPort": 9002, "PublishedPort": 9002, "Protocol": "udp"},
    ]
    assert web["Interfaces"][1] == {
        "Network": "shop_back", "Interface": "eth1", "HostInterface": "veth2b3c4d5e",
        "MacAddress": "02:42:ac:13:00:02", "IPv4Address": "172.19.0.2/16", "IPv6Address": "fd00:1::2/64",
        "Gateway": "172.19.0.1", "DefaultRoute": False, "Aliases": ["web"]}
    assert data[1]["NetworkMode"] == "service:web" and data[1]["Interfaces"] == []
    json.dumps(data)  # plain data


def test_ps_lists_the_ipv6_binding_when_the_ports_lead_to_an_ipv6_address():
    dual = copy.deepcopy(SHOP_DATA)
    dual["containers"][0]["interfaces"][0]["ipv6"] = "fd00:2::2/64"
    assert views.ps_json(from_data(dual))[0]["Ports"].startswith("0.0.0.0:8080->80/tcp, :::8080->80/tcp, 127.0.0.1")


def test_ls_lists_projects_not_standalone_networks():
    assert views.ls_rows([STANDALONE, SHOP]) == [
        ["NAME", "STATUS", "CONFIG FILES"], ["shop", "running(3)", "/srv/shop/compose.yml"]]
    assert views.ls_json([SHOP]) == [{"Name": "shop", "Status": "running(3)", "ConfigFiles": "/srv/shop/compose.yml"}]
    assert views.ls_rows([]) == [["NAME", "STATUS", "CONFIG FILES"]]


def test_network_ls_lists_each_network_once():
    assert views.network_ls_rows([SHOP, STANDALONE]) == [
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        ["cccccccccccc", "shared_net", "bridge", "local"],
        ["bbbbbbbbbbbb", "shop_back", "bridge", "local"],
        ["aaaaaaaaaaaa", "shop_front", "bridge", "local"],
    ]
    data = {n["Name"]: n for n in views.network_ls_json([SHOP, STANDALONE])}
    assert data["shop_back"]["Internal"] == "true" and data["shop_back"]["IPv6"] == "true"
    # the external network's creation time is its owner's
    assert data["shared_net"]["CreatedAt"] == "2026-11-28T09:00:00Z"
    assert "com.docker.compose.project=shop" in data["shop_front"]["Labels"]
    assert "tier=web" in data["shop_front"]["Labels"]


def test_network_inspect_shaped_like_docker():
    got = views.network_inspect([SHOP, STANDALONE], "shop_back")
    assert got == {
        "Name": "shop_back",
        "Id": "b" * 64,
        "Created": "2026-11-28T10:00:00Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": True,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [
            {"Subnet": "172.19.0.0/16", "IPRange": "172.19.5.0/24", "Gateway": "172.19.0.1"},
            {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}]},
        "Internal": True,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {"1" * 64: {
            "Name": "shop-web-1",
            "EndpointID": got["Containers"]["1" * 64]["EndpointID"],
            "MacAddress": "02:42:ac:13:00:02",
            "IPv4Address": "172.19.0.2/16",
            "IPv6Address": "fd00:1::2/64"}},
        "Options": {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.driver.mtu": "1400"},
        "Labels": {"com.docker.compose.network": "back", "com.docker.compose.project": "shop"},
    }
    assert len(got["Containers"]["1" * 64]["EndpointID"]) == 64


def test_network_inspect_external_network_gathers_containers_of_every_project_and_finds_ids():
    other = copy.deepcopy(SHOP_DATA)
    other["project"] = "blog"
    other["containers"] = [dict(SHOP_DATA["containers"][2], name="blog-db-1", id="4" * 64)]
    got = views.network_inspect([SHOP, STANDALONE, from_data(other)], "shared_net")
    assert {c["Name"] for c in got["Containers"].values()} == {"shop-db-1", "blog-db-1"}
    assert got["Labels"] == {} and got["Created"] == "2026-11-28T09:00:00Z"
    assert views.network_inspect([SHOP], "cccc")["Name"] == "shared_net"  # id prefix
    assert views.network_inspect([SHOP], "nope") is None
    assert views.network_inspect([SHOP], "") is None
