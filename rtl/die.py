"""A die: a W x H grid of logical tiles built from W + ``spare_cols`` physical tiles a row.

Redundancy.  The ``dead`` input holds one bit per physical tile (row by row);
it is set from the defect map and held while the die runs.  In each row the
live physical tiles, left to right, take the logical columns 0..W-1; every tile
after a dead one shifts by one position, so up to ``spare_cols`` dead tiles a
row are hidden and software sees a uniform W x H mesh.  The links follow the
logical mesh: a tile's west input comes from the live tile before it in its
row (a dead one is bypassed), and its north input from the tile of the same
logical column in the row above, wherever that one sits.  Dead and unused
spare tiles are disabled and cut off.  A tile learns its logical coordinates
from the remap, offset by the die's ``origin_x``/``origin_y`` on the wafer, so
XY-addressed colors route by logical wafer coordinates.

The edges are the logical mesh's (``north_in[x]``, ``east_out[y]``, ... as in
:class:`rtl.mesh.Mesh`).  ``config`` writes the route table of the tile at
logical (x, y).  ``select_x``/``select_y`` pick the tile that the back door
and the status outputs (``halted``, ``pc``, ``counters``, ...) show.

With ``hierarchical=True`` (for Verilog) each tile is an ``Instance`` of
:data:`rtl.tile.TILE_MODULE`, converted once per configuration; with
``False`` the tiles are Amaranth submodules, for the Amaranth simulator.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .core import backdoor_signature
from .isa import COUNTERS
from .mesh import EDGES, mesh_config_layout, place_instance
from .params import ParamError
from .tile import MESH_PORTS, TILE_MODULE, Tile, tile_signature
from .wavelet import Dir, LinkSignature

__all__ = ["Die", "DIE_MODULE", "remap", "parse_defects"]

#: Verilog module name of the die.
DIE_MODULE = "tessera_die"


def remap(params, dead):
    """The logical layout of a die with the dead tiles ``dead`` (a set of physical
    ``(column, row)``): a dict ``(x, y) -> physical column``.  Raises ``ParamError``
    when a row has more dead tiles than spares, or a tile is off the die."""
    columns = params.width + params.spare_cols
    layout = {}
    for column, row in dead:
        if not (0 <= column < columns and 0 <= row < params.height):
            raise ParamError(f"dead tile ({column}, {row}) is not on the die: physical columns "
                             f"0..{columns - 1}, rows 0..{params.height - 1}")
    for row in range(params.height):
        live = [column for column in range(columns) if (column, row) not in dead]
        if len(live) < params.width:
            raise ParamError(f"row {row} has {columns - len(live)} dead tiles; the die has "
                             f"{params.spare_cols} spare tile(s) a row")
        for x in range(params.width):
            layout[x, row] = live[x]
    return layout


def dead_mask(params, dead):
    """The ``dead`` input word for a set of dead physical tiles (checked by :func:`remap`)."""
    remap(params, dead)
    columns = params.width + params.spare_cols
    return sum(1 << (row * columns + column) for column, row in dead)


def parse_defects(text, params, check=True):
    """A defect map: one dead physical tile per line, ``column,row`` (``#`` comments).
    Returns the set of tiles; raises ``ParamError`` naming the line of a bad one, and
    (with ``check``) when the die cannot hide them (:func:`remap`)."""
    dead = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [part.strip() for part in line.split(",")]
        # ASCII digits only (str.isdigit also takes '²', which int() refuses), and few
        # enough that int() reads them: no die is a million tiles across.
        if len(parts) != 2 or not all(part.isascii() and part.isdigit() and len(part) <= 6
                                      for part in parts):
            raise ParamError(f"defect map line {number}: expected 'column,row', not {line!r}")
        dead.add((int(parts[0]), int(parts[1])))
    if check:
        remap(params, dead)
    return dead


def die_signature(params):
    link = LinkSignature(params)
    width, height = params.width, params.height
    members = {
        "dead": In((width + params.spare_cols) * height),
        "origin_x": In(8),        # wafer coordinates of logical tile (0, 0): for XY routing
        "origin_y": In(8),
        "config": In(stream.Signature(mesh_config_layout(params))),
        "enable": In(1),
        "select_x": In(8),
        "select_y": In(8),
        "backdoor": In(backdoor_signature(params)),
        "halted": Out(1),
        "idle": Out(1),
        "fault": Out(3),
        "fault_pc": Out(16),
        "pc": Out(16),
        "counters": Out(32).array(COUNTERS),
        "all_idle": Out(1),       # every live tile halted with its microthreads done
    }
    for prefix, facing in EDGES:
        count = width if facing in (Dir.N, Dir.S) else height
        members[f"{prefix}_in"] = In(link).array(count)
        members[f"{prefix}_out"] = Out(link).array(count)
    return wiring.Signature(members)


class BrokenTile(wiring.Component):
    """A failed tile, for tests: every output babbles (valid wavelets and credits from a
    free-running LFSR), so a die that listens to a dead tile gets garbage."""

    def __init__(self, params):
        super().__init__(tile_signature(params))

    def elaborate(self, platform):
        m = Module()
        noise = Signal(32, init=0xACE1)
        m.d.sync += noise.eq(Cat(noise[1:], noise[0] ^ noise[1] ^ noise[21] ^ noise[31]))
        for link in self.outputs:
            m.d.comb += [link.valid.eq(1), link.wavelet.eq(noise)]
        for link in self.inputs:
            m.d.comb += [link.credit.eq(1), link.credit_color.eq(noise[3:8])]
        m.d.comb += [self.halted.eq(noise[0]), self.idle.eq(noise[1])]
        return m


class Die(wiring.Component):
    """The die; ``broken`` (flat elaboration only, for tests) names physical tiles
    ``(column, row)`` replaced by a :class:`BrokenTile`."""

    def __init__(self, params, *, hierarchical=True, broken=frozenset()):
        self._params = params
        self._hierarchical = hierarchical
        self._broken = frozenset(broken)
        if broken and hierarchical:
            raise ValueError("broken tiles exist only in the flat elaboration")
        super().__init__(die_signature(params))

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        width, height, spares = p.width, p.height, p.spare_cols
        columns = width + spares
        tiles = {(c, y): self._place(m, c, y) for y in range(height) for c in range(columns)}

        # The remap: logical column and use of every physical tile.
        logical = {}
        used = {}
        for y in range(height):
            dead_row = self.dead[y * columns:(y + 1) * columns]
            for c in range(columns):
                index = Signal(range(columns + 1), name=f"logical_{c}_{y}")
                m.d.comb += index.eq(sum((~dead_row[k]).as_unsigned() for k in range(c))
                                     if c else 0)
                logical[c, y] = index
                used[c, y] = Signal(name=f"used_{c}_{y}")
                m.d.comb += used[c, y].eq(~dead_row[c] & (index < width))

        def at(c, y, x):
            """Physical tile (c, y) holds logical column ``x`` (an int)."""
            return used[c, y] & (logical[c, y] == x)

        def join(link_in, candidates):
            """Connect the receiving link end ``link_in`` to whichever sender of
            ``candidates``, a list of ``(condition, sender link)``, has its condition true:
            the wavelets come forward from it, the credits go back to it."""
            valid, wavelet = Const(0), Const(0, len(link_in.wavelet.as_value()))
            for condition, sender in candidates:
                valid = Mux(condition, sender.valid, valid)
                wavelet = Mux(condition, sender.wavelet.as_value(), wavelet)
                with m.If(condition):
                    m.d.comb += [sender.credit.eq(link_in.credit),
                                 sender.credit_color.eq(link_in.credit_color)]
            m.d.comb += [link_in.valid.eq(valid), link_in.wavelet.eq(wavelet)]

        def out(tile, port):
            return tile.outputs[MESH_PORTS.index(port)]

        for (c, y), tile in tiles.items():
            x = logical[c, y]
            # West input: the nearest live tile to the left, or the west edge.
            west = [(used[c, y] & (x == 0), self.west_in[y])]
            for k in range(max(0, c - spares - 1), c):
                between_dead = [self.dead[y * columns + j] for j in range(k + 1, c)]
                west.append((used[c, y] & (x != 0) & ~self.dead[y * columns + k]
                             & Cat(*between_dead, Const(1)).all(), out(tiles[k, y], Dir.E)))
            # East input: the nearest live tile to the right, or the east edge.
            east = [(used[c, y] & (x == width - 1), self.east_in[y])]
            for k in range(c + 1, min(columns, c + spares + 2)):
                between_dead = [self.dead[y * columns + j] for j in range(c + 1, k)]
                east.append((used[c, y] & (x != width - 1) & ~self.dead[y * columns + k]
                             & Cat(*between_dead, Const(1)).all(), out(tiles[k, y], Dir.W)))
            # North and south inputs: the same logical column in the next row, or the edge.
            north, south = [], []
            for k in range(max(0, c - spares), min(columns, c + spares + 1)):
                for logical_x in range(width):
                    here = at(c, y, logical_x)
                    if y > 0:
                        north.append((here & at(k, y - 1, logical_x), out(tiles[k, y - 1], Dir.S)))
                    if y < height - 1:
                        south.append((here & at(k, y + 1, logical_x), out(tiles[k, y + 1], Dir.N)))
            if y == 0:
                north = [(at(c, y, lx), self.north_in[lx]) for lx in range(width)]
            if y == height - 1:
                south = [(at(c, y, lx), self.south_in[lx]) for lx in range(width)]
            for port, candidates in ((Dir.W, west), (Dir.E, east), (Dir.N, north),
                                     (Dir.S, south)):
                join(tile.inputs[MESH_PORTS.index(port)], candidates)

        # Edge outputs: from the live tile at the edge of the logical mesh.
        for prefix, facing in EDGES:
            for i, link in enumerate(getattr(self, f"{prefix}_out")):
                holders = [(c, y) for (c, y) in tiles
                           if (facing in (Dir.N, Dir.S) and y == (0 if facing == Dir.N
                                                                  else height - 1))
                           or (facing in (Dir.E, Dir.W) and y == i)]
                x_needed = (i if facing in (Dir.N, Dir.S)
                            else (0 if facing == Dir.W else width - 1))
                join(link, [(at(c, y, x_needed), out(tiles[c, y], facing)) for c, y in holders])

        # Coordinates, configuration, enable, back door and status.
        selected = {}
        config = self.config.payload
        m.d.comb += self.config.ready.eq(1)
        for (c, y), tile in tiles.items():
            selected[c, y] = used[c, y] & (logical[c, y] == self.select_x) & (self.select_y == y)
            m.d.comb += [
                tile.x.eq(self.origin_x + logical[c, y]), tile.y.eq(self.origin_y + y),
                tile.enable.eq(self.enable & used[c, y]),
                tile.config.valid.eq(self.config.valid & used[c, y]
                                     & (config.x == logical[c, y]) & (config.y == y)),
                tile.config.payload.eq(config.write),
            ]
            for path, member, value in tile.backdoor.signature.flatten(tile.backdoor):
                ours = self.backdoor
                for part in path:
                    ours = getattr(ours, part)
                if member.flow == In:      # towards the tile: write enables only when selected
                    is_enable = path[-1].endswith("_we")
                    m.d.comb += value.eq(ours & selected[c, y] if is_enable else ours)
        status = ["halted", "idle", "fault", "fault_pc", "pc"]
        for name in status:
            value = Const(0, len(getattr(self, name)))
            for key, tile in tiles.items():
                value = Mux(selected[key], getattr(tile, name), value)
            m.d.comb += getattr(self, name).eq(value)
        for n in range(COUNTERS):
            value = Const(0, 32)
            for key, tile in tiles.items():
                value = Mux(selected[key], tile.counters[n], value)
            m.d.comb += self.counters[n].eq(value)
        for name in ("mem_rdata", "acc_rdata", "reg_rdata"):
            value = Const(0, len(getattr(self.backdoor, name)))
            for key, tile in tiles.items():
                value = Mux(selected[key], getattr(tile.backdoor, name), value)
            m.d.comb += getattr(self.backdoor, name).eq(value)
        m.d.comb += self.all_idle.eq(Cat(~used[key] | tile.idle
                                         for key, tile in tiles.items()).all())
        return m

    def _place(self, m, column, row):
        """Add the physical tile (column, row); returns its ports."""
        name = f"tile_{column}_{row}"
        if self._hierarchical:
            tile = place_instance(m, name, TILE_MODULE, tile_signature(self._params))
        else:
            kind = BrokenTile if (column, row) in self._broken else Tile
            tile = m.submodules[name] = kind(self._params)
        return tile
