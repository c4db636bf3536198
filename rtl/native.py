"""A wrapper that prepares a block for the native C++ harness (``sim/native/``)."""

from amaranth.hdl import ClockDomain, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["NativeNode"]


class NativeNode(wiring.Component):
    """``block`` with its reset and its constant inputs taken through registers.

    Verilator re-evaluates all logic that depends on a top-level input on every
    ``eval()``.  Amaranth folds the reset into every register's next-state logic,
    so a block whose reset is a top-level input has its whole next-state cloud
    evaluated on each call.  Behind this wrapper only the logic that really
    depends on the link inputs is; the rest is evaluated once per clock edge.

    Ports are the block's, plus ``clk`` and ``reset``, which takes effect one cycle after it
    is raised and lasts one cycle after it is lowered.  The members named in
    ``registered`` (the tile coordinates, say) are delayed by one cycle as well.
    """

    def __init__(self, block, registered=()):
        self._block = block
        self._registered = tuple(registered)
        members = dict(block.signature.members)
        members["clk"] = In(1)
        members["reset"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = domain = ClockDomain("sync", reset_less=True)
        m.d.comb += domain.clk.eq(self.clk)
        reset = Signal()
        m.d.sync += reset.eq(self.reset)
        block = self._block
        m.submodules.block = ResetInserter(reset)(block)
        ours = {path: value for path, _, value in self.signature.flatten(self)}
        for path, member, theirs in block.signature.flatten(block):  # clk and reset are ours
            if member.flow == Out:
                m.d.comb += ours[path].eq(theirs)
            elif path[0] in self._registered:
                m.d.sync += theirs.eq(ours[path])
            else:
                m.d.comb += theirs.eq(ours[path])
        return m
