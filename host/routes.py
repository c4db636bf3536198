"""A small text syntax for route-table entries, for the command line and for tests.

    COLOR[@POSITION]: ACCEPT -> OUTPUT[,OUTPUT...] [last]

``ACCEPT`` and each ``OUTPUT`` name a router port (N, E, S, W or RAMP).  For
example ``3@1: W -> E,RAMP last`` takes color 3 from the west port in switch
position 1, copies it east and to the core, and wraps the switch to position 0
after it.  An entry without ``@`` is position 0; without ``last`` it is the
last entry only when the color has one switch position.
"""

import re

from rtl.params import ParamError
from rtl.wavelet import Dir, pack_route_write

__all__ = ["Route", "parse_route"]

_SYNTAX = re.compile(r"^\s*(\d+)(?:@(\d+))?\s*:\s*(\w+)\s*->\s*([\w\s,]+?)\s*(last)?\s*$")


class Route:
    """One route-table entry; ``word(params)`` is its configuration write."""

    def __init__(self, color, position, accept, outputs, last):
        self.color, self.position, self.last = color, position, last
        self.accept, self.outputs = accept, tuple(outputs)

    def word(self, params):
        return pack_route_write(params, self.color, self.position, self.accept, self.outputs,
                                self.last or params.switch_positions == 1)

    def __repr__(self):
        outputs = ",".join(port.name for port in self.outputs)
        last = " last" if self.last else ""
        return f"{self.color}@{self.position}: {self.accept.name} -> {outputs}{last}"


def _port(name, text):
    try:
        return Dir[name.strip().upper()]
    except KeyError:
        ports = ", ".join(port.name for port in Dir)
        raise ParamError(f"route {text!r}: no port named {name.strip()!r} (ports: {ports})") from None


def parse_route(text):
    match = _SYNTAX.match(text)
    if not match:
        raise ParamError(f"route {text!r} is not COLOR[@POSITION]: ACCEPT -> OUTPUT[,OUTPUT...] [last]")
    color, position, accept, outputs, last = match.groups()
    try:
        color, position = int(color), int(position or 0)
    except ValueError:                  # past Python's 4300 digits
        raise ParamError(f"route {text!r}: no router has that color or position") from None
    return Route(color, position, _port(accept, text),
                 [_port(name, text) for name in outputs.split(",")], bool(last))
