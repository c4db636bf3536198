"""Transaction-level golden model of the router and the mesh, and a scoreboard.

The model knows nothing about cycles.  It is fed the wavelets as they enter the
fabric and answers, for each, the outputs where it must come out.  That answer
does not depend on timing, because:

* an XY-addressed wavelet goes where its address says (dimension-ordered:
  x first, then y, then the ramp), whatever else is in flight;
* a static color is routed by one switch per color, whose entry names the one
  input it is taken from.  The router takes that color's wavelets from that
  input in queue order, forwards each to the entry's outputs, and a control
  wavelet steps the switch once it is out.  Wavelets of the color waiting on
  another input wait until the switch comes to them.  So the model keeps one
  FIFO per (input, color) and drains, per static color, the FIFO its switch
  points at -- the same sequence the hardware forwards, in the same order.

Order guarantees, and so the scoreboard keys:

* static color c: every copy leaving on output o comes from the single
  per-color stream, so the sequence on (o, c) is exact;
* XY color c: wavelets of one flow (same entry point) to one output keep their
  order; flows from different entry points interleave freely.  The key is
  (o, c, origin).

Everything is described with plain integers and :class:`rtl.wavelet.Dir`; the
wire formats come from :mod:`rtl.wavelet` (``pack_*`` / ``unpack_*``).
"""

import collections
from dataclasses import dataclass

from rtl.mesh import EDGE_OF, EDGES, edge_index, pack_mesh_config
from rtl.wavelet import ADDRESSED, Dir, pack_route_write, wavelet_layout

__all__ = [
    "Route", "RouteTable", "xy_direction", "Wavelet", "Delivery", "RouterModel",
    "MeshModel", "Scoreboard", "ScoreboardError", "ramp", "edge", "router_deliveries",
    "WaveletCodec",
]


# --- routes ------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One route-table entry of a static color."""
    accept: Dir
    outputs: frozenset
    last: bool = False

    def __post_init__(self):
        object.__setattr__(self, "accept", Dir(self.accept))
        object.__setattr__(self, "outputs", frozenset(Dir(o) for o in self.outputs))

    @property
    def mask(self):
        return sum(1 << o.value for o in self.outputs)


#: What an entry holds before it is written: the route table has no reset, and
#: its registers start at zero (accept N, no outputs, not last).  A wavelet
#: routed by it goes nowhere, so it waits forever.
UNWRITTEN = Route(Dir.N, frozenset(), False)


class RouteTable:
    """The route table of one router: ``entries[color][position]``."""

    def __init__(self, params):
        self.params = params
        self.entries = [[UNWRITTEN] * params.switch_positions
                        for _ in range(params.first_xy_color)]

    def set(self, color, position, accept, outputs, last=False):
        if not 0 <= color < self.params.first_xy_color:
            raise ValueError(f"color {color} is not a static color "
                             f"(static colors are 0..{self.params.first_xy_color - 1})")
        if not 0 <= position < self.params.switch_positions:
            raise ValueError(f"position {position} is not 0..{self.params.switch_positions - 1}")
        self.entries[color][position] = Route(accept, outputs, last)
        return self

    def route(self, color, position):
        return self.entries[color][position]

    def program(self, color, routes):
        """Write ``routes``, a list of (accept, outputs), at positions 0.. (the last: ``last``)."""
        if not 1 <= len(routes) <= self.params.switch_positions:
            raise ValueError(f"a color has 1..{self.params.switch_positions} positions")
        for position, (accept, outputs) in enumerate(routes):
            self.set(color, position, accept, outputs, last=position == len(routes) - 1)
        return self

    def next_position(self, color, position):
        """The switch position after a control wavelet at ``position``."""
        if self.entries[color][position].last:
            return 0
        return (position + 1) % self.params.switch_positions

    def writes(self):
        """The configuration words (:func:`pack_route_write`) that load every written entry."""
        words = []
        for color, entries in enumerate(self.entries):
            for position, entry in enumerate(entries):
                if entry is not UNWRITTEN:
                    words.append(pack_route_write(self.params, color, position, entry.accept,
                                                  entry.outputs, entry.last))
        return words

    def copy(self):
        other = RouteTable(self.params)
        other.entries = [list(entries) for entries in self.entries]
        return other


def xy_direction(x, y, dst_x, dst_y):
    """The output an XY-addressed wavelet for (dst_x, dst_y) takes at the router (x, y)."""
    if dst_x > x:
        return Dir.E
    if dst_x < x:
        return Dir.W
    if dst_y > y:
        return Dir.S
    if dst_y < y:
        return Dir.N
    return Dir.RAMP


# --- wavelets and deliveries --------------------------------------------------

class WaveletCodec:
    """:func:`rtl.wavelet.pack_wavelet` / :func:`unpack_wavelet` for hot loops.

    The field offsets and widths are read once from :func:`rtl.wavelet.wavelet_layout`
    and :data:`rtl.wavelet.ADDRESSED` (so the layouts stay the one definition);
    only the per-call work is cheaper.  Values are not range-checked.
    """

    def __init__(self, params):
        fields = {name: (field.offset, (1 << field.width) - 1)
                  for name, field in wavelet_layout(params)}
        (self._data_at, self._data_mask) = fields["data"]
        (self._ctrl_at, self._ctrl_mask) = fields["ctrl"]
        (self._color_at, self._color_mask) = fields["color"]
        addressed = {name: (field.offset, (1 << field.width) - 1) for name, field in ADDRESSED}
        self._dst_x = addressed["dst_x"]
        self._dst_y = addressed["dst_y"]
        self._payload = addressed["payload"]

    def pack(self, wavelet):
        return ((wavelet.data << self._data_at) | (wavelet.ctrl << self._ctrl_at)
                | (wavelet.color << self._color_at))

    def unpack(self, word):
        return Wavelet((word >> self._color_at) & self._color_mask,
                       (word >> self._data_at) & self._data_mask,
                       (word >> self._ctrl_at) & self._ctrl_mask)

    def addressed(self, dst_x, dst_y, payload):
        """:func:`rtl.wavelet.pack_addressed`."""
        return ((dst_x << self._dst_x[0]) | (dst_y << self._dst_y[0])
                | (payload << self._payload[0]))

    def destination(self, data_word):
        """(dst_x, dst_y) of an addressed data word."""
        (x_at, x_mask), (y_at, y_mask) = self._dst_x, self._dst_y
        return (data_word >> x_at) & x_mask, (data_word >> y_at) & y_mask


@dataclass(frozen=True)
class Wavelet:
    color: int
    data: int
    ctrl: int = 0


@dataclass(frozen=True)
class Delivery:
    """A wavelet that must appear on ``output``.

    ``origin`` is where the wavelet entered the model (an input port of a
    router model, a link of a mesh model); ``key`` is the scoreboard key.
    """
    output: object
    wavelet: Wavelet
    origin: object
    xy: bool

    @property
    def key(self):
        return (self.output, self.wavelet.color, self.origin if self.xy else None)


# --- the router ---------------------------------------------------------------

class RouterModel:
    """One router at (x, y) with route table ``routes``, switches at position 0 (as after reset).

    :meth:`inject` takes a wavelet on an input port and returns the deliveries
    that became certain: a list of ``(output Dir, Wavelet, origin)``.  A static
    wavelet whose color's switch does not take its input waits (see
    :attr:`waiting`) and is returned by the :meth:`inject` that unblocks it.
    """

    def __init__(self, params, x=0, y=0, routes=None):
        self.params = params
        self.x, self.y = x, y
        self.routes = routes if routes is not None else RouteTable(params)
        self.positions = [0] * params.first_xy_color
        self._codec = WaveletCodec(params)
        # (port, color) -> deque of (Wavelet, origin); static colors only.
        self._queues = collections.defaultdict(collections.deque)

    def is_xy(self, color):
        return color >= self.params.first_xy_color

    def current_route(self, color):
        return self.routes.route(color, self.positions[color])

    def inject(self, port, wavelet, origin=None):
        port = Dir(port)
        if origin is None:
            origin = port
        params = self.params
        if not 0 <= wavelet.color < params.colors:
            raise ValueError(f"color {wavelet.color} out of range 0..{params.colors - 1}")
        if self.is_xy(wavelet.color):
            dst_x, dst_y = self._codec.destination(wavelet.data)
            return [(xy_direction(self.x, self.y, dst_x, dst_y), wavelet, origin)]
        self._queues[port, wavelet.color].append((wavelet, origin))
        return self._drain(wavelet.color)

    def _drain(self, color):
        out = []
        while True:
            route = self.current_route(color)
            if not route.outputs:
                return out  # an unwritten or empty entry: the hardware never forwards
            queue = self._queues.get((route.accept, color))
            if not queue:
                return out
            wavelet, origin = queue.popleft()
            for output in sorted(route.outputs, key=lambda d: d.value):
                out.append((output, wavelet, origin))
            if wavelet.ctrl:
                self.positions[color] = self.routes.next_position(color, self.positions[color])

    @property
    def waiting(self):
        """Static wavelets held back by their color's switch: {(port, color): count}."""
        return {key: len(queue) for key, queue in self._queues.items() if queue}


# --- the mesh -----------------------------------------------------------------

def ramp(index):
    """The name of the ramp link of tile ``index`` (= y * width + x)."""
    return ("ramp", index)


def edge(prefix, index):
    """The name of an edge link: ``prefix`` in north/east/south/west, ``index`` along the side."""
    return (prefix, index)


class MeshModel:
    """A ``params.width`` x ``params.height`` mesh of :class:`RouterModel`.

    Links are named as in :class:`rtl.mesh.Mesh`: ``("ramp", i)`` for tile i, and
    ``("north", x)``, ``("east", y)``, ``("south", x)``, ``("west", y)`` for the
    edges (the same name for the ``_in`` and the ``_out`` link).  ``routes`` maps
    (x, y) to a :class:`RouteTable`.
    """

    def __init__(self, params, routes=None):
        self.params = params
        routes = routes or {}
        self.routers = {(x, y): RouterModel(params, x, y, routes.get((x, y)))
                        for y in range(params.height) for x in range(params.width)}

    def tile(self, x, y):
        return y * self.params.width + x

    def entry(self, link):
        """The router (x, y) and its input port where ``link`` enters the mesh."""
        kind, index = link
        width, height = self.params.width, self.params.height
        if kind == "ramp":
            return (index % width, index // width), Dir.RAMP
        facing = dict(EDGES)[kind]
        if kind in ("north", "south"):
            x, y = index, 0 if kind == "north" else height - 1
        else:
            x, y = (width - 1 if kind == "east" else 0), index
        return (x, y), facing

    def exit_link(self, x, y, port):
        """The link a wavelet leaving router (x, y) on ``port`` lands on, or None if a router."""
        port = Dir(port)
        if port is Dir.RAMP:
            return ramp(self.tile(x, y))
        dx, dy = port.step
        if (x + dx, y + dy) in self.routers:
            return None
        return edge(EDGE_OF[port], edge_index(port, x, y))

    def inject(self, link, wavelet):
        """Feed ``wavelet`` in at ``link``; returns the :class:`Delivery` list it made certain."""
        (x, y), port = self.entry(link)
        deliveries = []
        pending = [((x, y), port, wavelet, link)]
        while pending:
            (x, y), port, wavelet, origin = pending.pop(0)
            for output, out_wavelet, out_origin in self.routers[x, y].inject(port, wavelet, origin):
                target = self.exit_link(x, y, output)
                if target is None:
                    dx, dy = output.step
                    pending.append(((x + dx, y + dy), output.opposite, out_wavelet, out_origin))
                else:
                    deliveries.append(Delivery(target, out_wavelet, out_origin,
                                               self.routers[x, y].is_xy(out_wavelet.color)))
        return deliveries

    def hops(self, src, dst):
        """Routers crossed minus one by an XY wavelet from ramp ``src`` to ramp ``dst``."""
        width = self.params.width
        return abs(src % width - dst % width) + abs(src // width - dst // width)

    def config_words(self):
        """Mesh ``config`` words loading every router's route table."""
        words = []
        for (x, y), router in sorted(self.routers.items()):
            for write in router.routes.writes():
                words.append(pack_mesh_config(self.params, x, y, write))
        return words

    @property
    def waiting(self):
        return {(xy, key): count for xy, router in self.routers.items()
                for key, count in router.waiting.items()}


def router_deliveries(model, port, wavelet):
    """:meth:`RouterModel.inject` as :class:`Delivery` records (origin: the input port)."""
    return [Delivery(output, w, origin, model.is_xy(w.color))
            for output, w, origin in model.inject(port, wavelet)]


# --- the scoreboard -----------------------------------------------------------

class ScoreboardError(AssertionError):
    pass


class Scoreboard:
    """Checks each output's stream against the model, per (output, color[, origin]).

    :meth:`expect` queues a :class:`Delivery`; :meth:`observe` takes what came
    out of ``output``.  On a static color the observation must be the head of
    the one (output, color) queue; on an XY color it must be the head of one of
    the (output, color, origin) queues -- exactly one, so testbenches make the
    payloads of different origins distinct.  Anything else (a lost, duplicated,
    corrupted or reordered wavelet) raises :class:`ScoreboardError`, whose
    message starts with ``context`` (put the seed there).  :meth:`check_done`
    raises if anything is still expected.
    """

    def __init__(self, params, context=""):
        self.params = params
        self.context = context
        self._expected = collections.defaultdict(collections.deque)
        # (output, color) -> keys of its queues, for XY matching
        self._keys = collections.defaultdict(set)
        self.expected_count = 0
        self.observed_count = 0
        self.per_output = collections.Counter()

    def fail(self, message):
        raise ScoreboardError(f"[{self.context}] {message}" if self.context else message)

    def expect(self, delivery):
        key = delivery.key
        self._expected[key].append(delivery.wavelet)
        self._keys[key[0], key[1]].add(key)
        self.expected_count += 1

    def expect_all(self, deliveries):
        for delivery in deliveries:
            self.expect(delivery)

    def _describe(self, wavelet):
        return (f"color={wavelet.color} data=0x{wavelet.data:08x} ctrl={wavelet.ctrl}")

    def observe(self, output, wavelet, when=None):
        """Check one wavelet seen on ``output``; returns the key it matched."""
        at = f" at cycle {when}" if when is not None else ""
        color = wavelet.color
        if not 0 <= color < self.params.colors:
            self.fail(f"{output}: invalid color {color}{at}")
        keys = self._keys.get((output, color), ())
        heads = [(key, self._expected[key][0]) for key in keys if self._expected[key]]
        matches = [key for key, head in heads if head == wavelet]
        if not matches:
            if not heads:
                self.fail(f"{output}: unexpected wavelet {self._describe(wavelet)}{at} "
                          f"(nothing is outstanding on this output and color)")
            expected = "; ".join(f"origin {key[2]}: {self._describe(head)}"
                                 if key[2] is not None else self._describe(head)
                                 for key, head in heads)
            # Tell a reordering or a duplicate from a corruption.
            later = [key for key in keys if wavelet in list(self._expected[key])[1:]]
            why = ("out of order (it is queued behind others)" if later
                   else "lost, duplicated or corrupted")
            self.fail(f"{output}: got {self._describe(wavelet)}{at}, {why}; expected {expected}")
        if len(matches) > 1:
            self.fail(f"{output}: {self._describe(wavelet)}{at} is at the head of several "
                      f"flows {sorted(map(str, matches))}; the testbench must make payloads "
                      f"of different origins distinct")
        self._expected[matches[0]].popleft()
        self.observed_count += 1
        self.per_output[output] += 1
        return matches[0]

    @property
    def outstanding(self):
        return sum(len(queue) for queue in self._expected.values())

    def outstanding_by_key(self):
        return {key: len(queue) for key, queue in self._expected.items() if queue}

    def check_done(self):
        left = self.outstanding_by_key()
        if left:
            sample = ", ".join(f"{key}: {count} (next {self._describe(self._expected[key][0])})"
                               for key, count in sorted(left.items(), key=str)[:8])
            self.fail(f"{sum(left.values())} wavelets never arrived: {sample}")
