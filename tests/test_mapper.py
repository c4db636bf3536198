"""The mapper's plan and its fit errors (no simulator)."""

import pytest

from host import mapper, model
from host.wafer import WaferShape
from rtl.params import preset
from rtl.wavelet import Dir

PARAMS = preset("default")


def _quant(**changes):
    config = model.ModelConfig(**changes)
    return model.QuantModel(config, model.random_weights(config))


def _plan(qmodel, dies=(2, 1), die=(4, 4), params=PARAMS, **layout):
    return mapper.plan(qmodel, WaferShape(dies, die, params), [[65] * 4], [7], **layout)


def test_stages_snake_through_neighbouring_tiles():
    plan = _plan(_quant(n_layers=3), dies=(1, 2), die=(3, 2))
    tiles = [stage.tile for stage in plan.stages]
    assert [stage.kind for stage in plan.stages] == [
        "attention", "feed-forward"] * 3 + ["classifier"]
    assert plan.stages[0].name == "embedding + layer 0 attention"   # the first tile embeds
    assert tiles[:4] == [(0, 0), (1, 0), (2, 0), (2, 1)]     # east, then back west
    for a, b in zip(tiles, tiles[1:]):
        assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1
    assert plan.map_text().splitlines()[0].split() == ["A0", "F0", "A1"]


def test_routes_alternate_colors_along_the_stream():
    plan = _plan(_quant())
    by_tile = {}
    for x, y, color, accept, outputs in plan.routes:
        by_tile.setdefault((x, y), {})[color] = (accept, outputs)
    assert by_tile[(0, 0)][mapper.HOST_COLOR] == (Dir.RAMP, [Dir.W])
    assert by_tile[(1, 0)] == {0: (Dir.W, [Dir.RAMP]), 1: (Dir.RAMP, [Dir.E]),
                               mapper.LOOP_COLOR: (Dir.RAMP, [Dir.RAMP])}


def test_an_attention_block_too_large_for_one_tile_gets_two():
    # 9 KiB of data: q, k and v leave no room for the embedding table (8 KiB), which
    # takes a tile of its own.
    small = PARAMS.replace(sram_bytes=PARAMS.code_bytes + 9 * 1024)
    plan = _plan(_quant(), params=small)
    assert [s.kind for s in plan.stages] == ["embedding"] + [
        "qkv", "split attention", "feed-forward"] * 2 + ["classifier"]
    assert plan.map_text().splitlines()[0].split() == ["E", "Q0", "A0", "F0", "Q1", "A1", "F1",
                                                       "C"]
    assert all(len(s.data) <= small.data_bytes for s in plan.stages)
    # 14 KiB: layer 0's q, k, v tile holds the table too; layer 1's block fits one tile.
    roomier = _plan(_quant(), params=PARAMS.replace(sram_bytes=PARAMS.code_bytes + 14 * 1024))
    assert [s.name for s in roomier.stages][:4] == [
        "embedding + layer 0 qkv", "layer 0 attention", "layer 0 feed-forward",
        "layer 1 attention"]
    # The default tiles hold a whole attention block: one tile, unless asked for two.
    assert [s.kind for s in _plan(_quant()).stages][0] == "attention"
    assert [s.kind for s in _plan(_quant(), split_attention=True).stages][0] == "qkv"


def test_a_feed_forward_block_takes_as_many_slices_as_it_needs():
    # 256 hidden units need 2 x 256 accumulators and more: four slices of 64 fit.
    plan = _plan(_quant(hidden_dim=256))
    ffn = [s for s in plan.stages if s.kind == "feed-forward" and s.layer == 0]
    assert [s.name for s in ffn] == [f"layer 0 feed-forward {i}/4" for i in range(1, 5)]
    assert len({s.boundary for s in ffn}) == 1
    # The residual reaches every slice; the partial sums run from slice to slice.
    routes = {(x, y, color): (accept, outputs) for x, y, color, accept, outputs in plan.routes}
    stream = mapper.STREAM_COLORS[(ffn[0].boundary - 1) % 2]
    for a, b in zip(ffn, ffn[1:]):
        assert Dir.RAMP in routes[(*a.tile, stream)][1] and len(routes[(*a.tile, stream)][1]) == 2
        assert routes[(*b.tile, stream)][1][0] == Dir.RAMP
    assert [s.kind for s in _plan(_quant(), ffn_tiles=2).stages].count("feed-forward") == 4
    with pytest.raises(mapper.MapError, match="64 hidden units do not split evenly over 3"):
        _plan(_quant(), ffn_tiles=3)


def test_too_few_tiles_names_the_first_stage_left_out():
    with pytest.raises(mapper.MapError, match=r"classifier has no tile .*1 short"):
        _plan(_quant(), dies=(1, 1), die=(2, 2))


def test_a_layer_too_large_for_its_region_names_the_layer_and_the_shortfall():
    # Even split over two tiles, the attention block's q, k, v weights do not fit.
    with pytest.raises(mapper.MapError, match=r"layer 0 qkv needs 52300 bytes of data "
                                              r"SRAM \(largest: wq 16384.*: 7244 short"):
        _plan(_quant(dim=128, hidden_dim=128, n_heads=4, n_kv_heads=4))
    with pytest.raises(mapper.MapError, match=r"layer 0 feed-forward needs 99728 bytes .*: "
                                              r"54672 short"):
        _plan(_quant(hidden_dim=1024), ffn_tiles=1)
    # Sliced as it needs (16 slices a layer), it wants more tiles than the wafer has.
    with pytest.raises(mapper.MapError, match=r"layer 1 feed-forward has no tile .*3 short"):
        _plan(_quant(hidden_dim=1024))


def test_too_few_accumulators_for_the_context():
    with pytest.raises(mapper.MapError, match=r"layer 0 attention needs 4\d\d "
                                              r"accumulators \(largest: scores 300.*short"):
        _plan(_quant(seq_len=300))


def test_a_program_too_large_for_the_code_memory():
    with pytest.raises(mapper.MapError, match=r"layer 0 qkv: program is \d+ instructions"):
        _plan(_quant(), params=PARAMS.replace(code_bytes=1024))


def test_too_few_colors():
    with pytest.raises(mapper.MapError, match="needs 6 static colors"):
        _plan(_quant(), params=PARAMS.replace(colors=4, xy_colors=2))


def test_route_conflicts_and_cycles_are_refused():
    conflict = [(0, 0, 1, Dir.W, [Dir.E]), (0, 0, 1, Dir.N, [Dir.RAMP])]
    with pytest.raises(mapper.MapError, match=r"route conflict at tile \(0, 0\): color 1"):
        mapper._check_routes(conflict)
    ring = [(0, 0, 0, Dir.N, [Dir.E]), (1, 0, 0, Dir.W, [Dir.S]), (1, 1, 0, Dir.N, [Dir.W]),
            (0, 1, 0, Dir.E, [Dir.N])]
    with pytest.raises(mapper.MapError, match="cyclic channel dependency"):
        mapper._check_routes(ring)
    mapper._check_routes(ring[:3])           # the same hops without the last: no cycle


def test_wafers_each_hold_whole_layers_and_the_stream_passes_the_rest():
    quant = _quant(n_layers=3)
    plan = _plan(quant, dies=(1, 2), die=(3, 2), wafers=2)
    home = {stage.name: stage.tile[1] // 2 for stage in plan.stages}
    assert [home[s.name] for s in plan.stages] == [0, 0, 0, 0, 1, 1, 1]  # layers 0, 1 | 2
    assert plan.stages[4].tile == (0, 2)                  # wafer 1 starts at its first tile
    by_tile = {}
    for x, y, color, accept, outputs in plan.routes:
        by_tile.setdefault((x, y), {})[color] = (accept, outputs)
    # Layer 1's feed-forward ends wafer 0 at (2, 1); the stream runs west through the
    # unused tiles of that row and down into wafer 1.
    assert plan.stages[3].tile == (2, 1)
    color = mapper.STREAM_COLORS[plan.stages[3].boundary % 2]
    assert by_tile[(2, 1)][color] == (Dir.RAMP, [Dir.W])
    assert by_tile[(1, 1)][color] == (Dir.E, [Dir.W])
    assert by_tile[(0, 1)][color] == (Dir.E, [Dir.S])
    assert by_tile[(0, 2)][color] == (Dir.N, [Dir.RAMP])
    assert {(0, 1), (1, 1)} <= set(plan.unused)
    assert "-- wafer 1" in plan.map_text().splitlines()


def test_more_wafers_than_layers_is_refused():
    with pytest.raises(mapper.MapError, match="3 wafers for a 2-layer model"):
        _plan(_quant(), dies=(1, 3), wafers=3)


def test_a_wafer_too_small_for_its_layers_is_named():
    # Wafer 0 holds layer 0 (q, k, v with the embedding, attention, feed-forward); wafer 1
    # has no tile left for the classifier after layer 1.
    with pytest.raises(mapper.MapError, match=r"wafer 1's 3x1 tiles: classifier has no tile"):
        _plan(_quant(), dies=(1, 2), die=(3, 1), wafers=2, split_attention=True)


def test_a_prompt_takes_the_places_that_users_in_decode_leave_free():
    from host.kernels.stages import Schedule
    # User 0 decodes after 2 prompt tokens, user 1 has a 12-token prompt; 6 steps.  While
    # user 0's token goes round the loop (6 places), user 1's prompt takes the places.
    entries = Schedule((2, 12), (4, 2), 64, depth=6).entries
    assert entries == [(0, 0), (1, 0), (0, 1), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5),
                       (0, 2), (1, 6), (1, 7), (1, 8), (1, 9), (1, 10),
                       (0, 3), (1, 11), (0, 4), (1, 12)]
    # Everyone in decode: a position of every user before the next, whatever the depth.
    for depth in (1, 3, 8):
        order = Schedule((3, 3, 3), (5, 5, 5), 64, depth=depth).entries
        assert order == [(u, p) for p in range(7) for u in range(3)]
    # Serially, a prompt token also waits for the loop.
    serial = Schedule((3,), (2,), 64, serial_prefill=True, depth=4).entries
    assert serial == [(0, p) for p in range(4)]
