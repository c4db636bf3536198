"""The core's SRAMs: code memory, data banks and accumulator banks.

An SRAM is an ``amaranth.lib.memory.Memory`` that carries :data:`SRAM_ATTRIBUTE`,
so that synthesis (:mod:`sim.synth`) keeps it as a memory macro, listed by its
bits, instead of building it from flip-flops.  Small queues (the router's and
the ramp's) are not SRAMs: they stay register files.
"""

from amaranth.hdl import unsigned
from amaranth.lib.memory import Memory

__all__ = ["SRAM_ATTRIBUTE", "sram_memory"]

#: The attribute that marks a memory as an SRAM macro (Yosys sees it on the ``$mem_v2`` cell).
SRAM_ATTRIBUTE = "tessera_sram"


def sram_memory(width, depth):
    """A ``depth`` x ``width``-bit SRAM, all zeros at power-on."""
    return Memory(shape=unsigned(width), depth=depth, init=[], attrs={SRAM_ATTRIBUTE: 1})
