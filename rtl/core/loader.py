"""How a core's memories are loaded: the back door (direct access) and the front door (wavelets).

The back door (:func:`backdoor_signature`) is for the host harnesses: it writes a
row of data SRAM, a row of accumulators or a code word per cycle, and reads rows
and scalar registers, while the core is disabled or idle.  A row is read through
the SRAM's registered port: the row addressed in one cycle is on ``mem_rdata``
(``acc_rdata``) in the next.  Registers read in the same cycle.  The front door
(:class:`FrontDoor`) is the real loader: it takes the wavelets of
:func:`rtl.wavelet.load_color` from the ramp while the core is disabled and
writes the memories as they say (:class:`rtl.wavelet.LoaderTag`).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..wavelet import DATA_BITS, LoaderTag

__all__ = ["backdoor_signature", "FrontDoor"]


def backdoor_signature(params):
    """Direct access to a core's memories, from the loader's side."""
    lanes = params.lanes
    return wiring.Signature({
        "mem_row": Out(range(params.data_bytes // lanes)),
        "mem_wdata": Out(8 * lanes),
        "mem_we": Out(1),
        "mem_rdata": In(8 * lanes),
        "acc_row": Out(range(params.acc_words // lanes)),
        "acc_wdata": Out(32 * lanes),
        "acc_we": Out(1),
        "acc_rdata": In(32 * lanes),
        "code_addr": Out(range(params.code_words)),
        "code_wdata": Out(32),
        "code_we": Out(1),
        "reg": Out(4),
        "reg_rdata": In(32),
    })


class FrontDoor(wiring.Component):
    """The front-door loader.

    - ``waiting``/``wavelet``: the load color's queue has a wavelet, and its data.
      While ``enable`` is low the loader takes one each cycle (``take``).
    - ``code_we``/``code_addr``/``code_wdata``: a code word, written when its fourth
      byte arrives; ``sram_we``/``sram_address``/``sram_byte``: a data byte, in the
      cycle its wavelet is taken.  The core gives the back door priority over both.
    - ``loaded``: a ``BYTE`` wavelet was taken this cycle (the ``LOADED`` counter).
    - Reset: address 0, data SRAM, no code bytes assembled.
    """

    def __init__(self, params):
        self._params = params
        super().__init__({
            "enable": In(1),
            "waiting": In(1),
            "wavelet": In(DATA_BITS),
            "take": Out(1),
            "code_we": Out(1),
            "code_addr": Out(range(params.code_words)),
            "code_wdata": Out(32),
            "sram_we": Out(1),
            "sram_address": Out(16),
            "sram_byte": Out(8),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        address = Signal(16)
        to_code = Signal()
        assembled = Signal(24)       # code bytes so far, little-endian
        count = Signal(2)
        payload = self.wavelet[:16]
        tag, value = payload[14:], payload[:14]
        m.d.comb += [self.take.eq(~self.enable & self.waiting),
                     self.loaded.eq(self.take & (tag == LoaderTag.BYTE.value)),
                     self.code_addr.eq(address), self.code_wdata.eq(Cat(assembled, value[:8])),
                     self.sram_address.eq(address), self.sram_byte.eq(value[:8])]
        with m.If(self.take):
            with m.Switch(tag):
                with m.Case(LoaderTag.ADDRESS_LOW):
                    m.d.sync += [address[:14].eq(value), count.eq(0)]
                with m.Case(LoaderTag.ADDRESS_HIGH):
                    m.d.sync += [address[14:].eq(value[:2]), to_code.eq(value[13]), count.eq(0)]
                with m.Case(LoaderTag.BYTE):
                    with m.If(~to_code):
                        m.d.comb += self.sram_we.eq(1)
                        m.d.sync += address.eq(address + 1)
                    with m.Elif(count == 3):
                        m.d.comb += self.code_we.eq(1)
                        m.d.sync += [address.eq(address + 1), count.eq(0)]
                    with m.Else():
                        m.d.sync += [assembled.eq(Cat(assembled[8:], value[:8])),
                                     count.eq(count + 1)]
        return m
