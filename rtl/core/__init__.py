"""The processing element of a tile: scalar control, tasks, two vector microthreads.

The behaviour and the timing are specified by the instruction-set simulator,
:mod:`sim.iss`, whose docstring describes a cycle; the encoding is
:mod:`rtl.isa`.  This RTL matches the ISS cycle for cycle.

The units, a file each:

- :mod:`.fetch`: the code memory (``code_bytes``) and the decoder;
- :mod:`.scalar`: registers, control flow, tasks and faults; one instruction
  completes per cycle unless it waits, and it issues the vector operations;
- :mod:`.slots` and :mod:`.vector`: two microthread slots, each holding one
  vector operation with its operand descriptors, cursors and a two-entry
  staging buffer for fabric input; one slot runs a beat each cycle, on
- :mod:`.lanes`: the integer datapath of ``lanes`` lanes, and :mod:`.table` ``VTBL``'s
  lookup, both pipelined from E1 to E4 (:mod:`.stages`);
- :mod:`.float_lanes` (with ``float_lanes``): ``lanes // 2`` fp32 lanes from E1 to E6,
  of :mod:`.float_widen`, :mod:`.float_mul`, :mod:`.float_add` and :mod:`.float_convert`;
- :mod:`.banks`: data SRAM of ``sram_bytes - code_bytes`` bytes in ``lanes``
  byte-wide banks and ``acc_words`` int32 accumulators in ``lanes`` banks, so a
  stride-1 vector is ``lanes`` elements a cycle (:mod:`.sram` marks them as SRAMs);
- :mod:`.ramp`: one queue per color for wavelets from the router, and one credit
  counter per color for wavelets to it;
- :mod:`.loader`: the back door, which loads and reads the memories and registers
  while the core is disabled, and the front door, which loads them from wavelets.

This module joins them: the memories' ports, the counters and the status.

**Quiescence.**  ``quiescent`` says that no state of the core changes in this cycle
unless a wavelet or a credit arrives from the router, and that none but the ``CYCLES``
counter's changes in the cycles after, until one does: the scalar unit and the vector
unit are quiet (they say why in their docstrings), no wavelet is taken or sent and no
credit spent, and so it has been in each of the last :data:`SETTLE_CYCLES` cycles,
with nothing arriving, so that the pipelines' empty stages and the memories' read ports have taken
the idle values they then keep.  A simulator may skip such a core.  Built
``skippable`` (for simulation only), the core takes the cycles skipped on ``skipped``:
``CYCLES`` counts them at once, by the same rule as each cycle (enabled and not
halted), until the next clock edge, which keeps them; ``skipped`` is then zero.
Every memory is read through a registered port, as SRAM macros are: the fetch
addresses the code memory with the next PC, a vector beat issues (addresses its
operands) in one cycle and passes E1 to E4 (a float beat: E6) in the next four
(six), reading its accumulators in E3, and ``LD`` takes two cycles.  The counters add each cycle's
terms a cycle later, so a late term is not in series with a 32-bit addition.
Each data bank has two read ports: the beat's first operand (or the back door,
in cycles no beat issues) and its second operand, table or ``LD``; each
accumulator bank has three (the beat's two operands and its destination).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import COUNTERS, Counter
from ..wavelet import LinkSignature, load_color
from .banks import Banks
from .fetch import Fetch
from .loader import FrontDoor, backdoor_signature
from .ramp import RampInput, RampOutput
from .scalar import ScalarUnit
from .vector import VectorUnit, activity_layout

__all__ = ["Core", "core_signature", "backdoor_signature", "activity_layout", "SETTLE_CYCLES"]

#: Quiet cycles before a core is quiescent: more than the deepest pipeline (issue, E1 to
#: E6, and a read port behind E3), so that every register has taken its idle value.
SETTLE_CYCLES = 8


def core_signature(params, skippable=False):
    skipped = {"skipped": In(32)} if skippable else {}
    return wiring.Signature({
        "from_router": In(LinkSignature(params)),    # the router's ramp output
        "to_router": Out(LinkSignature(params)),     # the router's ramp input
        "enable": In(1),
        "backdoor": In(backdoor_signature(params)),
        "halted": Out(1),
        "idle": Out(1),                              # halted, and both slots finished
        "quiescent": Out(1),                         # see the module docstring
        "fault": Out(3),                             # an rtl.isa.Fault
        "fault_pc": Out(16),
        "pc": Out(16),
        "activity": Out(activity_layout()),          # for traces: .vector.activity_layout
        "counters": Out(32).array(COUNTERS),
        **skipped,
    })


class Core(wiring.Component):
    """One core; see the module docstring and :mod:`sim.iss`."""

    def __init__(self, params, skippable=False):
        self._params = params
        self._skippable = skippable
        super().__init__(core_signature(params, skippable))

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        m.submodules.fetch = fetch = Fetch(p)
        m.submodules.scalar = scalar = ScalarUnit(p)
        m.submodules.vector = vector = VectorUnit(p)
        m.submodules.ramp_in = ramp_in = RampInput(p)
        m.submodules.ramp_out = ramp_out = RampOutput(p)
        wiring.connect(m, wiring.flipped(self.from_router), ramp_in.link)
        wiring.connect(m, ramp_out.link, wiring.flipped(self.to_router))
        sram = Banks(m, "sram", p.lanes, p.data_bytes, 8)
        accs = Banks(m, "acc", p.lanes, p.acc_words, 32)
        bd = self.backdoor

        m.d.comb += [
            fetch.pc.eq(scalar.pc), fetch.next_pc.eq(scalar.next_pc),
            scalar.fetch_ready.eq(fetch.ready),
            scalar.run.eq(self.enable), vector.run.eq(self.enable),
            scalar.instruction.eq(fetch.instruction), scalar.in_range.eq(fetch.in_range),
            scalar.known.eq(fetch.known),
            # scalar unit <-> vector unit
            vector.launch.eq(scalar.launch), vector.launch_slot.eq(scalar.launch_slot),
            vector.launch_state.eq(scalar.launch_state),
            vector.launch_activates.eq(scalar.launch_activates),
            scalar.slots_active.eq(vector.active),
            vector.recv_wants.eq(scalar.recv_wants), vector.recv_color.eq(scalar.recv_color),
            scalar.pop_for_recv.eq(vector.pop_for_recv),
            scalar.beat_writes_mem.eq(vector.writes_mem),
            scalar.beat_sends.eq(vector.sends | vector.issue_sends),
            scalar.load_port_free.eq(~vector.reads_b),
            scalar.reduction_done.eq(vector.reduction_done),
            scalar.reduction_rd.eq(vector.reduction_rd),
            scalar.reduction_value.eq(vector.reduction_value),
            # the ramp
            scalar.nonempty.eq(ramp_in.nonempty), vector.nonempty.eq(ramp_in.nonempty),
            scalar.popped.eq(ramp_in.head), vector.popped.eq(ramp_in.head),
            scalar.credit_free.eq(ramp_out.credit_free),
            vector.credit_free.eq(ramp_out.credit_free),
            ramp_out.send.eq(vector.sends | scalar.send),
            ramp_out.reserve.eq(vector.reserve | scalar.send),
            ramp_out.reserve_color.eq(Mux(vector.reserve, vector.reserve_color,
                                          scalar.send_wavelet.color)),
            ramp_out.wavelet.eq(Mux(vector.sends, vector.send_wavelet, scalar.send_wavelet)),
            # status
            self.halted.eq(scalar.halted), self.fault.eq(scalar.fault),
            self.fault_pc.eq(scalar.fault_pc), self.pc.eq(scalar.pc),
            self.activity.eq(vector.activity),
            self.idle.eq(scalar.halted & ~vector.active.any()),
            scalar.reg.eq(bd.reg), bd.reg_rdata.eq(scalar.reg_rdata),
        ]
        self._windows(m, vector, scalar, sram, accs)
        front_door = self._front_door(m, ramp_in, vector, fetch)
        self._writes(m, vector, scalar, front_door, sram, accs)
        self._count(m, scalar, vector, ramp_in, ramp_out, front_door)
        self._settle(m, scalar, vector, ramp_in, ramp_out)
        return m

    def _settle(self, m, scalar, vector, ramp_in, ramp_out):
        """``quiescent``: quiet, with nothing arriving, in each of the last SETTLE_CYCLES
        cycles.  The condition is registered (``calm``), so that the quiet logic, which
        sits behind decode and the stalls, ends at a flip-flop and adds no gate level to
        a path; a state that cannot change keeps the core quiet, so the cycle it is seen
        in is quiet too."""
        quiet = Signal(name="core_quiet")
        calm = Signal()              # last cycle was quiet, with nothing arriving
        settled = Signal(range(SETTLE_CYCLES))
        m.d.comb += [quiet.eq(scalar.quiet & vector.quiet & ~ramp_in.pop_valid
                              & ~ramp_out.reserve & ~ramp_out.send),
                     self.quiescent.eq(calm & (settled == SETTLE_CYCLES - 1))]
        m.d.sync += calm.eq(quiet & ~(self.from_router.valid | self.to_router.credit))
        with m.If(~calm):
            m.d.sync += settled.eq(0)
        with m.Elif(settled != SETTLE_CYCLES - 1):
            m.d.sync += settled.eq(settled + 1)

    def _windows(self, m, vector, scalar, sram, accs):
        """The memories' read ports: the beat's operands, LD, and the back door, which
        reads a row through the first port in any cycle no beat issues."""
        bd, lanes = self.backdoor, self._params.lanes
        sram_a = Mux(vector.beat, vector.src_first, bd.mem_row * lanes)
        sram_b = Mux(vector.reads_b, vector.src2_first, scalar.load_address)
        acc_a = Mux(vector.beat, vector.src_first, bd.acc_row * lanes)
        for window, port in ((sram.read_window(sram_a, "a"), vector.mem_a),
                             (sram.read_window(sram_b, "b"), vector.mem_b),
                             (accs.read_window(acc_a, "a"), vector.acc_a),
                             (accs.read_window(vector.src2_first, "b"), vector.acc_b),
                             (accs.read_window(vector.accumulate_first, "d"), vector.acc_d)):
            m.d.comb += [mine.eq(theirs) for mine, theirs in zip(port, window)]
        m.d.comb += [scalar.load_data.eq(Cat(*vector.mem_b[:4])),
                     bd.mem_rdata.eq(Cat(vector.mem_a)), bd.acc_rdata.eq(Cat(vector.acc_a))]

    def _front_door(self, m, ramp_in, vector, fetch):
        """The loader takes the load color's wavelets while the core is disabled; the
        back door's code writes give way to it.  Returns it, or None without XY colors."""
        bd = self.backdoor
        m.d.comb += [ramp_in.pop_valid.eq(vector.pop_valid), ramp_in.pop_color.eq(vector.pop_color),
                     fetch.write_en.eq(bd.code_we), fetch.write_addr.eq(bd.code_addr),
                     fetch.write_data.eq(bd.code_wdata)]
        if self._params.xy_colors == 0:               # no XY color, no front door
            return None
        m.submodules.front_door = front_door = FrontDoor(self._params)
        color = load_color(self._params)
        m.d.comb += [front_door.enable.eq(self.enable),
                     front_door.waiting.eq(ramp_in.nonempty[color]),
                     front_door.wavelet.eq(ramp_in.head)]
        with m.If(front_door.take):
            m.d.comb += [ramp_in.pop_valid.eq(1), ramp_in.pop_color.eq(color)]
        with m.If(front_door.code_we):
            m.d.comb += [fetch.write_en.eq(1), fetch.write_addr.eq(front_door.code_addr),
                         fetch.write_data.eq(front_door.code_wdata)]
        return front_door

    def _writes(self, m, vector, scalar, front_door, sram, accs):
        """The memories' write ports: the back door, a beat, a store or the loader."""
        bd = self.backdoor
        sram_first, sram_lanes, sram_mask, sram_rows, sram_enable = sram.write_port()
        with m.If(bd.mem_we):
            m.d.comb += [sram_rows.eq(1), sram_first.eq(bd.mem_row),
                         sram_lanes.eq(bd.mem_wdata), sram_mask.eq(-1)]
        with m.Elif(vector.writes_mem):
            m.d.comb += [sram_first.eq(vector.write_first), sram_lanes.eq(Cat(vector.mem_bytes)),
                         sram_mask.eq(vector.mem_mask)]
        if front_door is not None:                    # only while the core is disabled
            with m.Elif(front_door.sram_we):
                m.d.comb += [sram_first.eq(front_door.sram_address),
                             sram_lanes.eq(front_door.sram_byte), sram_mask.eq(1)]
        with m.Else():
            # A store's address and data, in every other cycle; it writes if it completes.
            m.d.comb += [sram_first.eq(scalar.store_address), sram_lanes.eq(scalar.store_data),
                         sram_mask.eq(Mux(scalar.store_word, 0b1111, 0b1)),
                         sram_enable.eq(scalar.store)]
        acc_first, acc_lanes, acc_mask, acc_rows, _ = accs.write_port()
        with m.If(bd.acc_we):
            m.d.comb += [acc_rows.eq(1), acc_first.eq(bd.acc_row),
                         acc_lanes.eq(bd.acc_wdata), acc_mask.eq(-1)]
        with m.Elif(vector.writes_acc):
            m.d.comb += [acc_first.eq(vector.write_first), acc_lanes.eq(Cat(vector.acc_values)),
                         acc_mask.eq(vector.lane_valid)]

    def _count(self, m, scalar, vector, ramp_in, ramp_out, front_door):
        """The performance counters (:class:`rtl.isa.Counter`)."""
        increments = {           # each counter's terms, from the units
            Counter.CYCLES: [self.enable & ~scalar.halted],
            Counter.BUSY: [scalar.completed | vector.beat],
            Counter.SRAM_READS: [scalar.load_bytes, vector.sram_reads],
            Counter.SRAM_WRITES: [scalar.store_bytes, vector.sram_writes],
            Counter.WAVELETS_IN: [ramp_in.pop_valid],
            Counter.WAVELETS_OUT: [ramp_out.send],
            Counter.ZERO_SKIPS: [scalar.launch & ~scalar.launch_activates, vector.zero_skips],
            Counter.FAULTS: [scalar.fault_now],
            Counter.LOADED: [front_door.loaded if front_door is not None else 0],
        }
        # Each counter adds a cycle's terms a cycle later, so that a term (which may wait on
        # a fault check), their sum and the 32-bit addition are not one path; its value is
        # the register plus the terms pending, the count of every cycle before.  The terms
        # are small: they add to the register's low bits, and the high bits are chosen
        # between the register's and their increment, computed beside them (carry select).
        for counter, terms in increments.items():
            name = counter.name.lower()
            register = Signal(32, name=f"counter_{name}")
            pending = [Signal(Value.cast(term).shape(), name=f"pending_{name}_{n}")
                       for n, term in enumerate(terms)]
            m.d.sync += [*(late.eq(term) for late, term in zip(pending, terms)),
                         register.eq(self.counters[counter])]
            low = len(Value.cast(sum(pending))) + 1
            low_sum = Signal(low + 1, name=f"counter_{name}_low")
            high = register[low:]
            value = Cat(low_sum[:low], Mux(low_sum[low], high + 1, high))
            if counter == Counter.CYCLES and self._skippable:
                value = (value + Mux(terms[0], self.skipped, 0))[:32]
            m.d.comb += [low_sum.eq(register[:low] + sum(pending)),
                         self.counters[counter].eq(value),
                         scalar.counters[counter].eq(self.counters[counter])]
