"""Banked memories: the data SRAM and the accumulator file of a core.

Address ``a`` lives in bank ``a % lanes``, row ``a // lanes``, so any
``lanes`` consecutive addresses are one access per bank: a *window*.  A read
port of :class:`Banks` returns the window starting at any address, rotated so
that lane ``k`` holds address ``first + k``; the write port takes lanes and a
lane mask and rotates them back.  A single element (a strided access) is a
window of one.

Reads are synchronous, as an SRAM macro's: the window addressed in one cycle is
on the port in the next, and a read is transparent to the write of the same
clock edge (it returns the value written).
"""

from amaranth.hdl import Cat, Const, Mux, Signal

from .sram import sram_memory

__all__ = ["Banks"]


class Banks:
    """``lanes`` memories of ``width``-bit words and ``depth`` words in all."""

    def __init__(self, m, name, lanes, depth, width):
        self.lanes, self.width, self.rows = lanes, width, depth // lanes
        self.low_bits = (lanes - 1).bit_length()
        self.address_bits = max(1, (depth - 1).bit_length())
        self.memories, self._writes = [], []
        for bank in range(lanes):
            memory = sram_memory(width, self.rows)
            m.submodules[f"{name}_bank{bank}"] = memory
            self.memories.append(memory)
            self._writes.append(memory.write_port())
        self._m, self._name = m, name

    def _rows(self, first):
        """The row each bank reads or writes for the window starting at ``first``."""
        low, row = first[:self.low_bits], first[self.low_bits:]
        rows = []
        for bank in range(self.lanes):
            # Banks below the first one's take the next row; past the end, row 0 (an
            # unused lane).  No bank is below the first when the first is the last bank.
            this = row + (low > bank) if bank < self.lanes - 1 else row
            rows.append(Mux(this >= self.rows, 0, this))
        return rows

    def _rotate(self, words, amount, left):
        joined = Cat(*words, *words)
        width, total = self.width, self.width * self.lanes
        if left:
            return (joined << (amount * width))[total:2 * total]
        return (joined >> (amount * width))[:total]

    def read_window(self, first, name):
        """A read port: lanes ``k = 0..lanes-1`` hold the word at ``first + k``, where
        ``first`` is the address of the cycle before."""
        first = _fit(first, self.address_bits + 1)
        rows = self._rows(first)
        words = []
        for bank, memory in enumerate(self.memories):
            port = memory.read_port(transparent_for=(self._writes[bank],))
            self._m.d.comb += port.addr.eq(rows[bank])
            words.append(port.data)
        rotation = Signal(max(1, self.low_bits), name=f"{self._name}_{name}_rotation")
        self._m.d.sync += rotation.eq(first[:self.low_bits])
        lanes = Signal(self.width * self.lanes, name=f"{self._name}_{name}")
        self._m.d.comb += lanes.eq(self._rotate(words, rotation, left=False))
        return [lanes[k * self.width:(k + 1) * self.width] for k in range(self.lanes)]

    def write_port(self):
        """The one write port: returns ``(first, lanes, mask, row_mode, enable)``, signals
        to drive.

        With ``row_mode`` set, ``first`` is a row and ``lanes`` go to banks 0.. in order
        (the back door); otherwise lane ``k`` goes to address ``first + k`` when mask bit
        ``k`` is set.  Nothing is written while ``enable`` (1 unless driven) is low: a
        late write enable, applied after the rotation.
        """
        m, name = self._m, self._name
        first = Signal(self.address_bits + 1, name=f"{name}_write_first")
        lanes = Signal(self.width * self.lanes, name=f"{name}_write_lanes")
        mask = Signal(self.lanes, name=f"{name}_write_mask")
        row_mode = Signal(name=f"{name}_write_rows")
        enable = Signal(init=1, name=f"{name}_write_enable")
        low = first[:self.low_bits]
        rows = self._rows(first)
        words = [lanes[k * self.width:(k + 1) * self.width] for k in range(self.lanes)]
        rotated = self._rotate(words, low, left=True)
        rotated_mask = (Cat(mask, mask) << low)[self.lanes:2 * self.lanes]
        for bank, port in enumerate(self._writes):
            m.d.comb += [
                port.addr.eq(Mux(row_mode, first, rows[bank])),
                port.data.eq(Mux(row_mode, words[bank],
                                 rotated[bank * self.width:(bank + 1) * self.width])),
                port.en.eq(Mux(row_mode, mask[bank], rotated_mask[bank]) & enable),
            ]
        return first, lanes, mask, row_mode, enable


def _fit(value, width):
    """``value`` as exactly ``width`` unsigned bits."""
    if isinstance(value, int):
        return Const(value, width)
    return value.as_unsigned()[:width] if len(value) >= width else value.as_unsigned()
