"""The die in the Amaranth simulator: remapping, bad defect maps, and dead tiles that babble.

A dead tile in the flat elaboration can be a :class:`rtl.die.BrokenTile`, which
drives garbage on every output.  With the defect map naming it, the die must
behave exactly as a die without dead tiles: it never listens to a dead tile.
"""

import random

import pytest

from rtl.die import Die, parse_defects, remap
from rtl.params import PRESETS, ParamError
from sim.core_session import simulate_amaranth
from sim.die_session import run_die
from tb.die_tb import check_scenario, scenario

# Without the float lanes, which the Python simulator takes minutes to compile.
PARAMS = PRESETS["test"].replace(width=2, height=2, spare_cols=1, float_lanes=0)


def _simulate(die, dead):
    return simulate_amaranth(die, lambda port: run_die(port, PARAMS, scenario(PARAMS, 1), dead,
                                                        fresh=True))


def test_dead_tiles_are_bypassed_even_when_they_babble():
    reference = _simulate(Die(PARAMS, hierarchical=False), set())
    check_scenario(PARAMS, reference)
    dead = {(0, 0), (1, 1)}      # row 0 shifts everything; row 1 moves the programmed tile
    outcome = _simulate(Die(PARAMS, hierarchical=False, broken=dead), dead)
    check_scenario(PARAMS, outcome)
    assert outcome.received == reference.received
    assert outcome.tiles == reference.tiles


def test_remap_shifts_past_dead_tiles():
    params = PRESETS["test"].replace(width=4, height=3, spare_cols=2)
    layout = remap(params, {(1, 0), (0, 2), (3, 2)})
    assert [layout[x, 0] for x in range(4)] == [0, 2, 3, 4]
    assert [layout[x, 1] for x in range(4)] == [0, 1, 2, 3]
    assert [layout[x, 2] for x in range(4)] == [1, 2, 4, 5]


def test_random_defect_maps_within_the_spares_always_remap():
    params = PRESETS["test"].replace(width=4, height=4, spare_cols=2)
    rng = random.Random(3)
    for _ in range(100):
        dead = {(c, r) for r in range(4) for c in rng.sample(range(6), rng.randint(0, 2))}
        layout = remap(params, dead)
        for (x, y), column in layout.items():
            assert (column, y) not in dead
            assert x == 0 or layout[x - 1, y] < column       # order kept within a row
            assert column - x <= params.spare_cols


@pytest.mark.parametrize("text, problem", [
    ("0,0\n1,0\n", "row 0 has 2 dead tiles"),       # beyond the one spare of PARAMS
    ("5,0\n", "not on the die"),
    ("1;1\n", "line 1: expected 'column,row'"),
    ("# header\n1,x\n", "line 2"),
])
def test_bad_defect_maps_are_refused(text, problem):
    with pytest.raises(ParamError, match=problem):
        parse_defects(text, PARAMS.replace(height=2))
