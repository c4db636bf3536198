"""Fetch and decode: the code memory and the fields of the instruction at the PC."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import INSTRUCTION, Op
from .sram import sram_memory

__all__ = ["Fetch"]


class Fetch(wiring.Component):
    """The code memory (``code_words`` words, an SRAM with a registered read port) and
    the decoder.

    - ``next_pc`` in: the PC of the next cycle, which the memory reads now, so that
      ``instruction`` (a view of :data:`rtl.isa.INSTRUCTION`) is the word at ``pc`` in
      the cycle the PC holds it; ``in_range`` says that ``pc`` is inside the code
      memory and ``known`` that the opcode is one of :class:`rtl.isa.Op`.
    - ``ready``: low in the first cycle after reset, which only fetches.
    - ``write_en``/``write_addr``/``write_data``: one code word written a cycle (the
      loaders); a read of the same word in the same cycle returns it.
    - Reset: the memory keeps its contents.
    """

    def __init__(self, params):
        self._params = params
        super().__init__({
            "pc": In(16),
            "next_pc": In(16),
            "ready": Out(1),
            "instruction": Out(INSTRUCTION),
            "in_range": Out(1),
            "known": Out(1),
            "write_en": In(1),
            "write_addr": In(range(params.code_words)),
            "write_data": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.code = code = sram_memory(32, p.code_words)
        write = code.write_port()
        read = code.read_port(transparent_for=(write,))
        fetched = Signal()
        m.d.sync += fetched.eq(1)
        opcode = self.instruction.opcode
        m.d.comb += [
            read.addr.eq(self.next_pc[:len(read.addr)]), self.instruction.eq(read.data),
            self.ready.eq(fetched),
            self.in_range.eq(self.pc < p.code_words),
            self.known.eq(Const(sum(1 << op for op in Op), 64).bit_select(opcode, 1)),
            write.addr.eq(self.write_addr), write.data.eq(self.write_data),
            write.en.eq(self.write_en),
        ]
        return m
