"""The wavelet, the link between routers, and the router's configuration word.

This module is the one definition of the wire formats. The RTL uses the
Amaranth layouts; the golden models and testbenches use the ``pack_*`` /
``unpack_*`` helpers, which are derived from the same layouts.

A wavelet is 32 data bits, a color and a control bit.  On an XY-addressed
color the data splits into a 16-bit payload and the destination tile
(:data:`ADDRESSED`).

A link moves at most one wavelet per cycle, downstream, and returns at most
one credit per cycle, upstream.  The sender keeps a credit counter per color,
initialised to the receiver's queue depth; it sends a wavelet of color ``c``
only while it holds a credit for ``c``, and the receiver returns that credit
(``credit`` with ``credit_color = c``) when the wavelet leaves its queue.
Both directions are driven from registers, so no combinational path crosses
a link.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from .params import ParamError

__all__ = [
    "DATA_BITS", "Dir", "PORTS", "ADDRESSED", "wavelet_layout", "route_layout", "route_write_layout",
    "LinkSignature", "pack_wavelet", "unpack_wavelet", "pack_addressed", "unpack_addressed",
    "pack_route_write", "pack", "unpack", "LoaderTag", "load_color", "loader_payloads",
]

DATA_BITS = 32


class Dir(enum.Enum, shape=3):
    """A router port.  The value is also the bit of the port in an output mask."""
    N = 0     #: towards y - 1
    E = 1     #: towards x + 1
    S = 2     #: towards y + 1
    W = 3     #: towards x - 1
    RAMP = 4  #: to and from the tile's core

    @property
    def opposite(self):
        return {Dir.N: Dir.S, Dir.S: Dir.N, Dir.E: Dir.W, Dir.W: Dir.E, Dir.RAMP: Dir.RAMP}[self]

    @property
    def step(self):
        """(dx, dy) of one hop out of this port."""
        return {Dir.N: (0, -1), Dir.E: (1, 0), Dir.S: (0, 1), Dir.W: (-1, 0), Dir.RAMP: (0, 0)}[self]


PORTS = len(Dir)

#: The data of a wavelet on an XY-addressed color.
ADDRESSED = data.StructLayout({"payload": 16, "dst_x": 8, "dst_y": 8})


def wavelet_layout(params):
    return data.StructLayout({
        "data": DATA_BITS,
        "ctrl": 1,               # control wavelet: advances the switch position of its color
        "color": unsigned(params.color_bits),
    })


def route_layout(params):
    """One route-table entry: where a color is accepted from and where it goes."""
    return data.StructLayout({
        "accept": Dir,           # the only input port this color is taken from
        "outputs": PORTS,        # one bit per Dir; several bits multicast
        "last": 1,               # after this position the switch wraps to position 0
    })


def route_write_layout(params):
    """A write to the route table, as carried by the configuration port."""
    return data.StructLayout({
        "color": unsigned(params.color_bits),
        "position": unsigned(max(1, (params.switch_positions - 1).bit_length())),
        "route": route_layout(params),
    })


class LinkSignature(wiring.Signature):
    """One direction of a router link, seen from the sender."""

    def __init__(self, params):
        super().__init__({
            "valid": Out(1),
            "wavelet": Out(wavelet_layout(params)),
            "credit": In(1),
            "credit_color": In(unsigned(params.color_bits)),
        })


# --- plain-integer views of the same layouts, for models and testbenches ---

def pack(layout, values):
    """The integer of ``layout`` holding ``values`` (nested dicts for nested structs)."""
    word = 0
    for name, field in layout:
        value = values[name]
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(field.shape, data.StructLayout):
            value = pack(field.shape, value)
        width = field.width
        if not 0 <= value < (1 << width):
            raise ValueError(f"{name}={value} does not fit in {width} bits")
        word |= value << field.offset
    return word


def unpack(layout, word):
    """The field values of ``layout`` in the integer ``word``, as nested dicts."""
    values = {}
    for name, field in layout:
        width = field.width
        value = (word >> field.offset) & ((1 << width) - 1)
        if isinstance(field.shape, data.StructLayout):
            value = unpack(field.shape, value)
        values[name] = value
    return values


def pack_wavelet(params, data_word, color, ctrl=0):
    return pack(wavelet_layout(params), {"data": data_word, "color": color, "ctrl": ctrl})


def unpack_wavelet(params, word):
    """Return (data, color, ctrl)."""
    fields_ = unpack(wavelet_layout(params), word)
    return fields_["data"], fields_["color"], fields_["ctrl"]


def pack_addressed(dst_x, dst_y, payload):
    return pack(ADDRESSED, {"payload": payload, "dst_x": dst_x, "dst_y": dst_y})


def unpack_addressed(data_word):
    """Return (dst_x, dst_y, payload)."""
    fields_ = unpack(ADDRESSED, data_word)
    return fields_["dst_x"], fields_["dst_y"], fields_["payload"]


def pack_route_write(params, color, position, accept, outputs, last):
    """The ``config`` word that sets entry ``position`` of static ``color``'s route.

    ``accept`` is a Dir, ``outputs`` an iterable of Dir.  Raises ``ParamError``
    for a color or position the router does not have.
    """
    if not 0 <= color < params.first_xy_color:
        raise ParamError(f"color {color} has no route table: static colors are "
                         f"0..{params.first_xy_color - 1}")
    if not 0 <= position < params.switch_positions:
        raise ParamError(f"switch position {position} does not exist: positions are "
                         f"0..{params.switch_positions - 1}")
    mask = 0
    for port in outputs:
        mask |= 1 << Dir(port).value
    return pack(route_write_layout(params), {
        "color": color, "position": position,
        "route": {"accept": Dir(accept), "outputs": mask, "last": int(last)},
    })


# --- the front door: loading a core's memories over the fabric ---

class LoaderTag(enum.Enum, shape=2):
    """The top two bits of a loader wavelet's 16-bit payload; the low 14 are the value.

    Wavelets on :func:`load_color` that reach a disabled core write its memories:
    ``ADDRESS_LOW`` and ``ADDRESS_HIGH`` set the address (bits 13..0, then 15..14 in
    value bits 1..0) and the target (value bit 13 of ``ADDRESS_HIGH``: 1 for code);
    each ``BYTE`` (value bits 7..0) writes one data byte, or one byte of a code word,
    little-endian, and advances the address (by a byte, or by a word every 4 bytes).
    """
    ADDRESS_LOW = 0
    ADDRESS_HIGH = 1
    BYTE = 2


def load_color(params):
    """The color that carries loader wavelets: the top XY-addressed color."""
    if params.xy_colors == 0:
        raise ParamError("the front door needs an XY-addressed color (xy_colors >= 1)")
    return params.colors - 1


def loader_payloads(address, content, code=False):
    """The payloads that write ``content`` (bytes) at ``address`` (a byte address of
    data SRAM, or a word address of code memory when ``code``)."""
    def tagged(tag, value):
        return tag.value << 14 | value
    payloads = [tagged(LoaderTag.ADDRESS_LOW, address & 0x3FFF),
                tagged(LoaderTag.ADDRESS_HIGH, int(code) << 13 | address >> 14 & 0x3)]
    return payloads + [tagged(LoaderTag.BYTE, byte) for byte in content]
