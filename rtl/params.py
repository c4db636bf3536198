"""Every hardware parameter of tessera, in one frozen dataclass.

The RTL, the golden models, the testbenches and the host all take a
:class:`Params`; nothing else defines a hardware constant.  ``Params`` checks
itself on construction, so an invalid combination never reaches elaboration.
"""

import dataclasses
import json
from dataclasses import dataclass, fields

__all__ = ["Params", "ParamError", "PRESETS", "preset"]


class ParamError(ValueError):
    """An invalid parameter value or an unknown parameter name."""


@dataclass(frozen=True)
class Params:
    width: int = 4              # tiles per mesh row (x grows to the east)
    height: int = 4             # tiles per mesh column (y grows to the south)
    colors: int = 8             # virtual channels per link; the WSE has 24
    xy_colors: int = 2          # the top `xy_colors` colors carry XY-addressed wavelets
    queue_depth: int = 8        # wavelets per (input port, color); 2 sustain 1 wavelet/cycle,
                                # more absorb contention (uniform saturation 0.40 -> 0.42 at 8x8)
    switch_positions: int = 2   # route-table entries per color, stepped by control wavelets
    sram_bytes: int = 48 * 1024 # per-core SRAM, as on the WSE: code and data
    code_bytes: int = 4096      # of which the instruction bank (4 bytes per instruction)
    lanes: int = 16             # int8 SIMD lanes per core
    acc_words: int = 256        # int32 accumulators per core (1 KiB): an LLM block's vectors
    spare_cols: int = 1         # spare tiles per die row, for redundancy
    float_lanes: int = 0        # 1: lanes // 2 fp16/bf16/fp32 lanes beside the int8 ones

    def __post_init__(self):
        def need(ok, message):
            if not ok:
                raise ParamError(message)
        for field in fields(self):
            value = getattr(self, field.name)
            need(type(value) is int, f"{field.name} must be an integer, not {value!r}")
        need(1 <= self.width <= 255 and 1 <= self.height <= 255,
             f"mesh must be 1..255 tiles on each side, not {self.width}x{self.height}")
        need(1 <= self.colors <= 32, f"colors must be 1..32, not {self.colors}")
        need(0 <= self.xy_colors <= self.colors,
             f"xy_colors must be 0..colors ({self.colors}), not {self.xy_colors}")
        need(1 <= self.queue_depth <= 64, f"queue_depth must be 1..64, not {self.queue_depth}")
        need(1 <= self.switch_positions <= 8,
             f"switch_positions must be 1..8, not {self.switch_positions}")
        need(self.lanes in (4, 8, 16, 32), f"lanes must be 4, 8, 16 or 32, not {self.lanes}")
        need(self.sram_bytes >= 1024 and self.sram_bytes % (4 * self.lanes) == 0,
             f"sram_bytes must be at least 1024 and a multiple of {4 * self.lanes}, "
             f"not {self.sram_bytes}")
        need(self.code_bytes % 4 == 0 and 64 <= self.code_bytes <= min(1 << 16, self.sram_bytes // 2),
             f"code_bytes must be a multiple of 4 from 64 to half of sram_bytes "
             f"({self.sram_bytes // 2}), not {self.code_bytes}")
        need(self.data_bytes % self.lanes == 0 and self.data_bytes <= 1 << 16,
             f"data SRAM (sram_bytes - code_bytes = {self.data_bytes}) must be a multiple of "
             f"lanes ({self.lanes}) and at most 65536 bytes")
        need(self.acc_words % self.lanes == 0 and self.lanes <= self.acc_words <= 4096,
             f"acc_words must be a multiple of lanes ({self.lanes}) up to 4096, "
             f"not {self.acc_words}")
        need(0 <= self.spare_cols <= 4, f"spare_cols must be 0..4, not {self.spare_cols}")
        need(self.float_lanes in (0, 1), f"float_lanes must be 0 or 1, not {self.float_lanes}")

    @property
    def color_bits(self):
        """Width of the color field of a wavelet."""
        return max(1, (self.colors - 1).bit_length())

    @property
    def data_bytes(self):
        """Data SRAM of a core: what the instruction bank leaves of ``sram_bytes``."""
        return self.sram_bytes - self.code_bytes

    @property
    def float_width(self):
        """Floating-point elements per beat: 16-bit ones read the int8 lanes' bytes."""
        return self.lanes // 2 if self.float_lanes else 0

    @property
    def code_words(self):
        return self.code_bytes // 4

    @property
    def first_xy_color(self):
        """Colors at or above this one are XY-addressed; those below follow static routes."""
        return self.colors - self.xy_colors

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def with_settings(self, settings):
        """Apply ``key=value`` strings, as given to ``--set``."""
        known = {field.name for field in fields(self)}
        changes = {}
        for setting in settings:
            key, sep, value = setting.partition("=")
            key = key.strip()
            if not sep:
                raise ParamError(f"--set expects key=value, not {setting!r}")
            if key not in known:
                raise ParamError(f"unknown parameter {key!r} (known: {', '.join(sorted(known))})")
            try:
                changes[key] = int(value, 0)
            except ValueError:
                raise ParamError(f"parameter {key} must be an integer, not {value!r}") from None
        return self.replace(**changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ParamError(f"unknown parameter {sorted(unknown)[0]!r}")
        return cls(**values)


PRESETS = {
    # Small and quick to build: unit tests and cocotb regressions.
    "test": Params(width=4, height=4, colors=4, xy_colors=1, queue_depth=4, sram_bytes=4096,
                   code_bytes=1024, lanes=16, acc_words=64),
    # The demo wafer's tiles.
    "default": Params(),
    # The real model's tiles: the float lanes, and 4 KiB of accumulators (an attention
    # head's scores take one a position of the context).
    "float": Params(float_lanes=1, acc_words=1024),
    # WSE-3-like: 24 colors per link, 48 KiB per core.
    "wse3": Params(width=8, height=8, colors=24, xy_colors=2, queue_depth=4),
}


def preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None
