"""Unit tests of the golden model and the scoreboard (sim/fabric.py): plain pytest, no simulator."""

import random

import pytest

from rtl.mesh import mesh_config_layout
from rtl.params import PRESETS
from rtl.wavelet import (Dir, pack_addressed, pack_wavelet, route_write_layout, unpack,
                         unpack_addressed, unpack_wavelet, wavelet_layout)
from sim.fabric import (Delivery, MeshModel, RouteTable, RouterModel, Scoreboard,
                        ScoreboardError, Wavelet, WaveletCodec, edge, ramp, router_deliveries,
                        xy_direction)

P = PRESETS["test"]
XY = P.first_xy_color


def outputs(deliveries):
    return [(d[0], d[1].data) for d in deliveries]


# --- routes ---------------------------------------------------------------------

def test_route_table_writes_use_the_wire_format():
    routes = RouteTable(P).program(1, [(Dir.W, {Dir.E, Dir.RAMP}), (Dir.N, {Dir.S})])
    words = routes.writes()
    assert len(words) == 2
    fields = [unpack(route_write_layout(P), word) for word in words]
    assert fields[0] == {"color": 1, "position": 0,
                         "route": {"accept": Dir.W.value, "outputs": 0b10010, "last": 0}}
    assert fields[1]["route"] == {"accept": Dir.N.value, "outputs": 0b00100, "last": 1}


def test_route_table_rejects_xy_colors_and_bad_positions():
    with pytest.raises(ValueError):
        RouteTable(P).set(XY, 0, Dir.N, {Dir.S})
    with pytest.raises(ValueError):
        RouteTable(P).set(0, P.switch_positions, Dir.N, {Dir.S})
    with pytest.raises(ValueError):
        RouteTable(P).program(0, [(Dir.N, {Dir.S})] * (P.switch_positions + 1))


@pytest.mark.parametrize("dst,want", [
    ((3, 2), Dir.E), ((3, 0), Dir.E), ((255, 255), Dir.E),
    ((1, 2), Dir.W), ((0, 255), Dir.W),
    ((2, 3), Dir.S), ((2, 255), Dir.S),
    ((2, 1), Dir.N), ((2, 0), Dir.N),
    ((2, 2), Dir.RAMP),
])
def test_xy_direction_is_x_first(dst, want):
    assert xy_direction(2, 2, *dst) is want


# --- router ---------------------------------------------------------------------

def test_xy_wavelet_goes_by_its_address_from_any_input():
    model = RouterModel(P, 2, 2)
    for port in Dir:
        wavelet = Wavelet(XY, pack_addressed(2, 0, 7), 1)  # ctrl means nothing on XY colors
        assert outputs(model.inject(port, wavelet)) == [(Dir.N, wavelet.data)]


def test_static_multicast_in_port_order():
    routes = RouteTable(P).program(0, [(Dir.N, {Dir.RAMP, Dir.E, Dir.S})])
    model = RouterModel(P, routes=routes)
    got = model.inject(Dir.N, Wavelet(0, 5))
    assert [o for o, _, _ in got] == [Dir.E, Dir.S, Dir.RAMP]
    assert all(origin is Dir.N for _, _, origin in got)


def test_control_wavelet_is_routed_by_the_old_position_then_steps_the_switch():
    routes = RouteTable(P).program(1, [(Dir.W, {Dir.E}), (Dir.W, {Dir.S})])
    model = RouterModel(P, routes=routes)
    seq = [Wavelet(1, 0), Wavelet(1, 1, ctrl=1), Wavelet(1, 2), Wavelet(1, 3, ctrl=1),
           Wavelet(1, 4)]
    got = [outputs(model.inject(Dir.W, w)) for w in seq]
    assert got == [[(Dir.E, 0)], [(Dir.E, 1)], [(Dir.S, 2)], [(Dir.S, 3)], [(Dir.E, 4)]]
    assert model.positions[1] == 0


def test_last_wraps_early_and_unwritten_positions_hold_wavelets():
    routes = RouteTable(P).program(0, [(Dir.W, {Dir.E})])  # one position, last
    model = RouterModel(P, routes=routes)
    assert outputs(model.inject(Dir.W, Wavelet(0, 1, ctrl=1))) == [(Dir.E, 1)]
    assert model.positions[0] == 0
    # Without `last`, the switch steps to position 1, which nobody wrote: it stalls.
    routes = RouteTable(P).set(0, 0, Dir.W, {Dir.E}, last=False)
    model = RouterModel(P, routes=routes)
    assert outputs(model.inject(Dir.W, Wavelet(0, 1, ctrl=1))) == [(Dir.E, 1)]
    assert model.inject(Dir.W, Wavelet(0, 2)) == []
    assert model.waiting == {(Dir.W, 0): 1}


def test_static_color_waits_for_its_switch_to_take_its_input():
    routes = RouteTable(P).program(2, [(Dir.N, {Dir.RAMP}), (Dir.S, {Dir.RAMP})])
    model = RouterModel(P, routes=routes)
    assert model.inject(Dir.S, Wavelet(2, 10)) == []
    assert model.inject(Dir.S, Wavelet(2, 11)) == []
    assert model.waiting == {(Dir.S, 2): 2}
    assert outputs(model.inject(Dir.N, Wavelet(2, 1))) == [(Dir.RAMP, 1)]
    # The control wavelet from N releases S's wavelets, in their order.
    got = outputs(model.inject(Dir.N, Wavelet(2, 2, ctrl=1)))
    assert got == [(Dir.RAMP, 2), (Dir.RAMP, 10), (Dir.RAMP, 11)]
    # N's wavelets now wait.
    assert model.inject(Dir.N, Wavelet(2, 3)) == []
    assert outputs(model.inject(Dir.S, Wavelet(2, 12, ctrl=1))) == [(Dir.RAMP, 12), (Dir.RAMP, 3)]
    assert model.waiting == {}


def test_router_deliveries_keys():
    routes = RouteTable(P).program(0, [(Dir.N, {Dir.E})])
    model = RouterModel(P, 2, 2, routes)
    static, = router_deliveries(model, Dir.N, Wavelet(0, 1))
    xy, = router_deliveries(model, Dir.W, Wavelet(XY, pack_addressed(3, 2, 1)))
    assert static.key == (Dir.E, 0, None)
    assert xy.key == (Dir.E, XY, Dir.W)


# --- mesh -----------------------------------------------------------------------

def test_mesh_links_and_entry_points():
    mesh = MeshModel(P)
    assert mesh.entry(ramp(5)) == ((1, 1), Dir.RAMP)
    assert mesh.entry(edge("north", 2)) == ((2, 0), Dir.N)
    assert mesh.entry(edge("south", 2)) == ((2, 3), Dir.S)
    assert mesh.entry(edge("east", 1)) == ((3, 1), Dir.E)
    assert mesh.entry(edge("west", 3)) == ((0, 3), Dir.W)
    assert mesh.exit_link(0, 0, Dir.N) == edge("north", 0)
    assert mesh.exit_link(3, 2, Dir.E) == edge("east", 2)
    assert mesh.exit_link(1, 1, Dir.E) is None
    assert mesh.exit_link(1, 1, Dir.RAMP) == ramp(5)


def test_mesh_xy_reaches_its_ramp_and_keys_by_source():
    mesh = MeshModel(P)
    for src in range(16):
        for dst in range(16):
            wavelet = Wavelet(XY, pack_addressed(dst % 4, dst // 4, src))
            delivery, = mesh.inject(ramp(src), wavelet)
            assert delivery == Delivery(ramp(dst), wavelet, ramp(src), True)
            assert delivery.key == (ramp(dst), XY, ramp(src))
    assert mesh.hops(0, 15) == 6


def test_mesh_xy_beyond_the_edge_leaves_the_mesh():
    mesh = MeshModel(P)
    delivery, = mesh.inject(ramp(4), Wavelet(XY, pack_addressed(9, 1, 0)))
    assert delivery.output == edge("east", 1)
    delivery, = mesh.inject(edge("north", 1), Wavelet(XY, pack_addressed(1, 200, 0)))
    assert delivery.output == edge("south", 1)


def test_mesh_static_row_multicast():
    routes = {(x, 1): RouteTable(P).program(0, [(Dir.W, {Dir.RAMP, Dir.E})]) for x in range(4)}
    mesh = MeshModel(P, routes)
    got = mesh.inject(edge("west", 1), Wavelet(0, 99, 1))
    assert sorted(d.output for d in got) == sorted([ramp(4), ramp(5), ramp(6), ramp(7),
                                                    edge("east", 1)])
    assert all(d.key[2] is None for d in got)
    words = mesh.config_words()
    assert len(words) == 4
    fields = [unpack(mesh_config_layout(P), w) for w in words]
    assert sorted((f["x"], f["y"]) for f in fields) == [(0, 1), (1, 1), (2, 1), (3, 1)]


def test_mesh_static_color_switch_in_a_later_router():
    # (1, 0) alternates color 1 between E and S; control wavelets from (0, 0) step it.
    routes = {(0, 0): RouteTable(P).program(1, [(Dir.RAMP, {Dir.E})]),
              (1, 0): RouteTable(P).program(1, [(Dir.W, {Dir.E}), (Dir.W, {Dir.S})]),
              (2, 0): RouteTable(P).program(1, [(Dir.W, {Dir.N})]),
              (1, 1): RouteTable(P).program(1, [(Dir.N, {Dir.RAMP})])}
    mesh = MeshModel(P, routes)
    seq = [Wavelet(1, 0), Wavelet(1, 1, 1), Wavelet(1, 2), Wavelet(1, 3, 1), Wavelet(1, 4)]
    got = [[d.output for d in mesh.inject(ramp(0), w)] for w in seq]
    assert got == [[edge("north", 2)], [edge("north", 2)], [ramp(5)], [ramp(5)],
                   [edge("north", 2)]]


# --- scoreboard -------------------------------------------------------------------

def _board():
    return Scoreboard(P, context="seed=7")


def static(output, data, ctrl=0, color=0):
    return Delivery(output, Wavelet(color, data, ctrl), Dir.N, False)


def xy(output, origin, payload):
    return Delivery(output, Wavelet(XY, pack_addressed(0, 0, payload)), origin, True)


def test_scoreboard_accepts_the_exact_sequence():
    board = _board()
    board.expect_all([static(Dir.E, 1), static(Dir.E, 2), static(Dir.S, 1)])
    board.observe(Dir.S, Wavelet(0, 1))
    board.observe(Dir.E, Wavelet(0, 1))
    board.observe(Dir.E, Wavelet(0, 2))
    board.check_done()
    assert board.observed_count == 3 and board.outstanding == 0


@pytest.mark.parametrize("observed,why", [
    (Wavelet(0, 2), "out of order"),
    (Wavelet(0, 9), "lost, duplicated or corrupted"),
    (Wavelet(0, 1, ctrl=1), "lost, duplicated or corrupted"),
    (Wavelet(1, 1), "unexpected"),
])
def test_scoreboard_rejects_reordering_and_corruption(observed, why):
    board = _board()
    board.expect_all([static(Dir.E, 1), static(Dir.E, 2)])
    with pytest.raises(ScoreboardError, match=why) as error:
        board.observe(Dir.E, observed, when=12)
    assert "seed=7" in str(error.value) and "cycle 12" in str(error.value)


def test_scoreboard_rejects_duplicates_and_reports_losses():
    board = _board()
    board.expect_all([static(Dir.E, 1), static(Dir.E, 2)])
    board.observe(Dir.E, Wavelet(0, 1))
    with pytest.raises(ScoreboardError):
        board.observe(Dir.E, Wavelet(0, 1))
    with pytest.raises(ScoreboardError, match="1 wavelets never arrived"):
        board.check_done()


def test_scoreboard_interleaves_xy_flows_but_keeps_each_in_order():
    board = _board()
    board.expect_all([xy(Dir.E, Dir.N, 1), xy(Dir.E, Dir.N, 2),
                      xy(Dir.E, Dir.W, 101), xy(Dir.E, Dir.W, 102)])
    data = {p: pack_addressed(0, 0, p) for p in (1, 2, 101, 102)}
    for payload, origin in ((101, Dir.W), (1, Dir.N), (102, Dir.W), (2, Dir.N)):
        assert board.observe(Dir.E, Wavelet(XY, data[payload])) == (Dir.E, XY, origin)
    board.check_done()


def test_scoreboard_xy_out_of_order_within_a_flow():
    board = _board()
    board.expect_all([xy(Dir.E, Dir.N, 1), xy(Dir.E, Dir.N, 2)])
    with pytest.raises(ScoreboardError, match="out of order"):
        board.observe(Dir.E, Wavelet(XY, pack_addressed(0, 0, 2)))


def test_scoreboard_flags_ambiguous_flows():
    board = _board()
    board.expect_all([xy(Dir.E, Dir.N, 5), xy(Dir.E, Dir.W, 5)])
    with pytest.raises(ScoreboardError, match="several"):
        board.observe(Dir.E, Wavelet(XY, pack_addressed(0, 0, 5)))


def test_wire_format_helpers_round_trip():
    # The model speaks rtl.wavelet's formats; one check that the layouts are what we think.
    data = pack_addressed(3, 1, 0xBEEF)
    assert unpack_addressed(data) == (3, 1, 0xBEEF)
    assert dict(wavelet_layout(P))["color"].width == P.color_bits


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_codec_matches_the_wire_format(preset):
    params = PRESETS[preset]
    codec = WaveletCodec(params)
    rng = random.Random(preset)
    for _ in range(200):
        data, color, ctrl = rng.getrandbits(32), rng.randrange(params.colors), rng.randrange(2)
        word = pack_wavelet(params, data, color, ctrl)
        assert codec.pack(Wavelet(color, data, ctrl)) == word
        assert codec.unpack(word) == Wavelet(color, data, ctrl)
        assert unpack_wavelet(params, word) == (data, color, ctrl)
        dst_x, dst_y = rng.randrange(256), rng.randrange(256)
        word = pack_addressed(dst_x, dst_y, data & 0xFFFF)
        assert codec.addressed(dst_x, dst_y, data & 0xFFFF) == word
        assert codec.destination(word) == (dst_x, dst_y)
