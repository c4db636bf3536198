"""Fetch and decode: the code memory and the fields of the instruction at the PC."""

from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import INSTRUCTION, Op
from .sram import sram_memory

__all__ = ["Fetch"]


class Fetch(wiring.Component):
    """The code memory (``code_words`` words, an SRAM) and the decoder.

    - ``pc`` in; ``instruction`` (a view of :data:`rtl.isa.INSTRUCTION`) is the word
      at ``pc`` in the same cycle, ``in_range`` says that ``pc`` is inside the code
      memory and ``known`` that the opcode is one of :class:`rtl.isa.Op`.
    - ``write_en``/``write_addr``/``write_data``: one code word written a cycle (the
      loaders); it is read from the next cycle on.
    - Reset: the memory keeps its contents.
    """

    def __init__(self, params):
        self._params = params
        super().__init__({
            "pc": In(16),
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
        read = code.read_port(domain="comb")
        write = code.write_port()
        opcode = self.instruction.opcode
        m.d.comb += [
            read.addr.eq(self.pc[:len(read.addr)]), self.instruction.eq(read.data),
            self.in_range.eq(self.pc < p.code_words),
            self.known.eq(Const(sum(1 << op for op in Op), 64).bit_select(opcode, 1)),
            write.addr.eq(self.write_addr), write.data.eq(self.write_data),
            write.en.eq(self.write_en),
        ]
        return m
