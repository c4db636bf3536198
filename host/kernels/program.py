"""One tile's program under construction: code, data SRAM and accumulators.

The kernels (:mod:`host.kernels.vector`) emit into a :class:`TileProgram`.  It
hands out data SRAM and accumulator space by name, so that a plan that does not
fit fails with the tile and the shortfall, and it adds the scalar subroutines
(:func:`isqrt`, :func:`reciprocal`) once, after the main program, when a kernel calls
them.

Register convention, shared by every kernel:

- ``r1``..``r7``: scratch; any kernel or subroutine may overwrite them;
- ``r8``, ``r9``: descriptor set-up (:meth:`TileProgram.mem` and friends);
- ``r10``, ``r11``: subroutine arguments and results;
- ``r12``: the subroutine return address;
- ``r13``: free for the stage program;
- ``r14``: the slot of the current token (its user's KV cache row), ``r15``: its
  position (:mod:`host.kernels.stages`).

Descriptors ``d0``..``d7`` are scratch.
"""

import numpy as np

from host.asm import Builder
from rtl.isa import Dtype, element_bytes

__all__ = ["TileProgram", "FitError", "POS", "SLOT", "STAGE", "ARG0", "ARG1", "LINK"]

ARG0, ARG1, LINK, STAGE, SLOT, POS = 10, 11, 12, 13, 14, 15
_DESC_BASE, _DESC_LENGTH = 8, 9


class FitError(ValueError):
    """A tile's program, data or accumulators do not fit its memories."""


class TileProgram:
    def __init__(self, params, name):
        self.params, self.name = params, name
        self.b = Builder(params)
        self.image = bytearray()
        self.symbols = {}            # data name -> (address, size)
        self.acc_symbols = {}        # accumulator name -> (base, size)
        self._acc_next = 0
        self._labels = 0
        self._subroutines = []

    # --- memory ---

    def alloc(self, name, size=None, content=None, align=1):
        """Reserve data SRAM for ``name``: ``size`` bytes, or ``content`` (bytes or an int8
        array); returns its address.  :meth:`finish` checks that it all fits."""
        if content is not None:
            content = np.asarray(content).astype(np.int8).tobytes() \
                if not isinstance(content, (bytes, bytearray)) else bytes(content)
            size = len(content)
        address = -len(self.image) % align + len(self.image)
        end = address + size
        self.image += bytes(end - len(self.image))
        if content is not None:
            self.image[address:end] = content
        self.symbols[name] = (address, size)
        return address

    def table16(self, name, values):
        """An int16 table (little-endian) for ``VTBL``; returns its address."""
        return self.alloc(name, content=np.asarray(values, np.int16).tobytes(), align=2)

    def word(self, name, value):
        return self.alloc(name, content=int(value).to_bytes(4, "little", signed=True), align=4)

    def acc(self, name, size):
        """Reserve ``size`` accumulators; returns the base index."""
        base = self._acc_next
        self._acc_next += size
        self.acc_symbols[name] = (base, size)
        return base

    # --- code ---

    def fresh(self, stem):
        """A label name not used before in this program."""
        self._labels += 1
        return f"{stem}_{self._labels}"

    def mem(self, d, base, length, stride=None, dtype=Dtype.INT):
        """``d`` = MEM(base, length, stride) of ``dtype`` elements; ``base`` and ``length``
        are ints or, as ``("r", n)``, registers; the stride (bytes) is one element's
        unless given."""
        stride = element_bytes(dtype) if stride is None else stride
        self.b.dmem(d, self._value(base, _DESC_BASE), self._value(length, _DESC_LENGTH), stride,
                    dtype=dtype)

    def accs(self, d, base, length):
        self.b.dacc(d, self._value(base, _DESC_BASE), self._value(length, _DESC_LENGTH))

    def fin(self, d, length, color, dtype=Dtype.INT):
        self.b.dfin(d, self._value(length, _DESC_LENGTH), color, dtype=dtype)

    def fout(self, d, length, color, dtype=Dtype.INT):
        self.b.dfout(d, self._value(length, _DESC_LENGTH), color, dtype=dtype)

    def _value(self, value, scratch):
        if isinstance(value, tuple):
            return value[1]
        self.b.li(scratch, value)
        return scratch

    def call(self, subroutine):
        """``JAL`` to a subroutine (:func:`isqrt`, :func:`reciprocal`), adding it on first
        use."""
        if subroutine not in self._subroutines:
            self._subroutines.append(subroutine)
        self.b.jal(LINK, subroutine.__name__)

    def finish(self):
        """The code words and the data image; raises :class:`FitError` if the program, the
        data or the accumulators do not fit the tile, saying by how much."""
        p = self.params
        _check_fits(self.name, "bytes of data SRAM", self.symbols, len(self.image),
                    p.data_bytes)
        _check_fits(self.name, "accumulators", self.acc_symbols, self._acc_next, p.acc_words)
        for subroutine in self._subroutines:
            self.b.label(subroutine.__name__)
            subroutine(self)
        try:
            program = self.b.build()
        except ValueError as error:
            raise FitError(f"{self.name}: {error}") from None
        return program.words(), bytes(self.image)


def _check_fits(name, unit, symbols, used, room):
    if used > room:
        largest = sorted(symbols.items(), key=lambda item: -item[1][1])[:3]
        items = ", ".join(f"{symbol} {size}" for symbol, (_, size) in largest)
        raise FitError(f"{name} needs {used} {unit} (largest: {items}); the tile has {room}: "
                       f"{used - room} short")


# --- scalar subroutines: arguments in r10 (and r11), result in r10, return by r12 ---

def isqrt(t):
    """r10 = floor(sqrt(r10)), for 0 <= r10 < 2**31 (bit by bit)."""
    b, shrink, loop, keep, done = t.b, t.fresh("sq_shrink"), t.fresh("sq_loop"), \
        t.fresh("sq_keep"), t.fresh("sq_done")
    b.addi(ARG1, 0, 0)               # the root so far
    b.li(1, 1 << 30)                 # the bit being decided
    b.label(shrink)
    b.bge(ARG0, 1, loop)
    b.srli(1, 1, 2)
    b.bne(1, 0, shrink)
    b.beq(0, 0, done)                # the number is 0
    b.label(loop)
    b.add(2, ARG1, 1)
    b.srli(ARG1, ARG1, 1)
    b.blt(ARG0, 2, keep)
    b.sub(ARG0, ARG0, 2)
    b.add(ARG1, ARG1, 1)
    b.label(keep)
    b.srli(1, 1, 2)
    b.bne(1, 0, loop)
    b.label(done)
    b.addi(ARG0, ARG1, 0)
    b.jr(LINK)


def reciprocal(t):
    """r10 = 2**r3 // r11 for 0 <= r3 <= 30 and r11 > 0 (restoring division of a power of
    two: the dividend's one set bit enters the remainder first, then zeros)."""
    b, loop, skip = t.b, t.fresh("recip_loop"), t.fresh("recip_skip")
    b.addi(1, 0, 0)                  # the quotient
    b.addi(2, 0, 1)                  # the remainder, with the dividend's set bit
    b.addi(3, 3, 1)                  # quotient bits
    b.label(loop)
    b.slli(1, 1, 1)
    b.blt(2, ARG1, skip)
    b.sub(2, 2, ARG1)
    b.addi(1, 1, 1)
    b.label(skip)
    b.slli(2, 2, 1)
    b.bdec(3, loop)
    b.addi(ARG0, 1, 0)
    b.jr(LINK)
