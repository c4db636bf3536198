"""Parameter validation and presets."""

import pytest

from rtl.params import PRESETS, ParamError, Params


@pytest.mark.parametrize("changes, message", [
    ({"colors": 0}, "colors must be 1..32, not 0"),
    ({"colors": 33}, "colors must be 1..32, not 33"),
    ({"width": 0}, "mesh must be"),
    ({"height": 256}, "mesh must be"),
    ({"queue_depth": 0}, "queue_depth must be 1..64, not 0"),
    ({"xy_colors": 9}, "xy_colors must be 0..colors (8), not 9"),
    ({"switch_positions": 0}, "switch_positions must be 1..8"),
    ({"lanes": 12}, "lanes must be 4, 8, 16 or 32"),
    ({"sram_bytes": 1000}, "sram_bytes must be at least 1024"),
    ({"colors": 2.5}, "colors must be an integer"),
])
def test_invalid_parameters_are_refused_with_the_value_given(changes, message):
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Params(**changes)


def test_presets_are_valid_and_the_wse3_preset_has_24_colors():
    assert PRESETS["wse3"].colors == 24
    for params in PRESETS.values():
        assert Params.from_dict(params.to_dict()) == params


def test_color_bits_cover_every_color():
    for colors in range(1, 33):
        assert (1 << Params(colors=colors, xy_colors=0).color_bits) >= colors
