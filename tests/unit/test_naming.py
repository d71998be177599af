from hypothesis import given, strategies as st

from compose_net import naming

names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=80)


@given(names, names)
def test_kernel_names_fit_ifnamsiz_and_are_stable(a, b):
    for name in (naming.bridge_name(a), naming.veth_name(a, b), naming.vxlan_name(a), naming.LEGACY_BRIDGE):
        assert naming.fits(name), name
    assert naming.bridge_name(a) == naming.bridge_name(a)
    assert naming.veth_name(a, b) == naming.veth_name(a, b)


def test_name_shapes():
    assert naming.bridge_name("shop_front").startswith("cn-") and len(naming.bridge_name("shop_front")) == 11
    assert naming.veth_name("shop-web-1", "shop_front").startswith("veth")
    assert len(naming.veth_name("shop-web-1", "shop_front")) == 12
    assert naming.veth_name("shop-web-1", "shop_front") != naming.veth_name("shop-web-1", "shop_back")
    assert naming.veth_name("shop-web-1", "shop_front") != naming.veth_name("shop-web-2", "shop_front")
    assert naming.bridge_name("shop_front") != naming.bridge_name("shop_back")
    assert naming.bridge_name("x", {naming.BRIDGE_NAME_OPT: "orcbr0"}) == "orcbr0"
    assert naming.table_name("shop") == "cn-shop"
    assert naming.netns_name("a-very-long-container-name-beyond-fifteen") == "a-very-long-container-name-beyond-fifteen"


def test_container_id_and_hostname():
    cid = naming.container_id("shop", "shop-web-1")
    assert len(cid) == 64 and int(cid, 16) >= 0
    assert naming.default_hostname("shop", "shop-web-1") == cid[:12]
    assert naming.container_id("shop", "shop-web-2") != cid


def test_vni_range_and_stability():
    vnis = {naming.vxlan_vni(f"net{i}") for i in range(200)}
    assert all(4096 <= v < 2**24 for v in vnis)
    assert len(vnis) == 200
    assert naming.vxlan_vni("a") == naming.vxlan_vni("a")


@given(st.text(min_size=1, max_size=40))
def test_link_group_nonzero_and_31_bits(project):
    g = naming.link_group(project, {})
    assert 0 < g < 2**31
    assert g == naming.link_group(project, {})


def test_link_group_skips_groups_of_foreign_links_but_keeps_its_own():
    g = naming.link_group("shop", {})
    assert naming.link_group("shop", {"eth9": g}) == g + 1
    assert naming.link_group("shop", {"cn-aaaa": g}, own_links={"cn-aaaa"}) == g
    assert naming.link_group("shop", {"eth9": g, "x": g + 1}) == g + 2
    assert naming.link_group("shop", {}, other_groups=[g]) == g + 1
