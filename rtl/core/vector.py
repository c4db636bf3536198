"""The vector unit: two microthread slots sharing one datapath, a beat a cycle.

Each cycle, as :mod:`sim.iss` specifies:

1. *Fabric input.*  A slot whose operation reads a ``FIN`` operand wants a
   wavelet while its staging buffer has room, it needs more and its color's queue
   holds one; the slots take turns, and ``RECV`` (the scalar unit's) is served
   only when no slot wants one.
2. *Issue.*  Of the slots that can make progress (an element staged when they
   read the fabric, a credit when they send to it) one issues a beat, the slots
   taking turns: it addresses the memory windows at its cursors (``*_first``),
   takes its staged element and its credit (``reserve``), and advances.
3. *Execute*, in the next cycle, from the beat's register (:func:`beat_layout`):
   the windows' lanes arrive, the lanes compute
   (:class:`rtl.core.lanes.IntegerLanes`) and the results go to SRAM, the
   accumulators or the ramp (``writes_mem``, ``writes_acc``, ``sends``).  ``VTBL``
   spends a cycle between the two reading its table (``reads_b``), in which no
   beat issues.

Ports: ``launch_*`` starts an operation in a slot (from the scalar unit, which has
checked it); ``active`` shows which slots are busy, from launch until their last
beat has executed.  Reset: both slots idle, no beat in flight.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import SLOTS, Kind, Op, VFlag
from ..wavelet import wavelet_layout
from .lanes import IntegerLanes
from .slots import Slot, beat_layout, element_step, is_kind, launch_layout

__all__ = ["VectorUnit"]


class VectorUnit(wiring.Component):
    """See the module docstring."""

    def __init__(self, params):
        self._params = params
        p, lanes = params, params.lanes
        super().__init__({
            "run": In(1),
            "launch": In(1),
            "launch_slot": In(range(SLOTS)),
            "launch_state": In(launch_layout(p)),
            "launch_activates": In(1),
            "active": Out(SLOTS),
            # fabric input: the queues, and the scalar unit's RECV
            "nonempty": In(p.colors),
            "popped": In(32),
            "recv_wants": In(1),
            "recv_color": In(p.color_bits),
            "pop_valid": Out(1),
            "pop_color": Out(p.color_bits),
            "pop_for_recv": Out(1),
            "credit_free": In(p.colors),
            # the memory windows
            "src_first": Out(16),              # addressed at issue
            "reads_b": Out(1),                 # the SRAM's second read port is the beat's
            "src2_first": Out(16),
            "dst_first": Out(16),
            "mem_a": In(8).array(lanes),
            "mem_b": In(8).array(lanes),
            "acc_a": In(32).array(lanes),
            "acc_b": In(32).array(lanes),
            "acc_d": In(32).array(lanes),
            # what the beat does
            "beat": Out(1),                    # a beat issues
            "reserve": Out(1),                 # ... and takes a credit of reserve_color
            "reserve_color": Out(p.color_bits),
            "issue_sends": Out(1),
            "execute": Out(1),                 # a beat executes
            "writes_mem": Out(1),
            "writes_acc": Out(1),
            "write_first": Out(16),
            "sends": Out(1),
            "send_wavelet": Out(wavelet_layout(p)),
            "values": Out(32).array(lanes),
            "lane_valid": Out(lanes),
            "reduction_done": Out(1),
            "reduction_rd": Out(4),
            "reduction_value": Out(32),
            "sram_reads": Out(range(2 * lanes + 5)),     # bytes read this cycle
            "sram_writes": Out(range(lanes + 1)),
            "zero_skips": Out(range(SLOTS + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        slots = [Slot(p, f"slot{n}") for n in range(SLOTS)]
        m.d.comb += self.active.eq(Cat(slot.active for slot in slots))
        pop_by_slot, pop_slot = self._arbitrate_pop(m, slots)
        executing = Signal(beat_layout(p))          # the beat issued last cycle
        table_phase = Signal()                      # VTBL reads its table: nothing issues
        m.d.comb += table_phase.eq(executing.valid & (executing.op == Op.VTBL)
                                   & ~executing.table_read)
        beat_slot = self._arbitrate_beat(m, slots, table_phase)

        # The issuing slot, through one multiplexer per register.
        sel = Slot(p, "beat")
        for mine, *theirs in zip(sel.registers(), *(s.registers() for s in slots)):
            m.d.comb += mine.eq(Array(Value.cast(v) for v in theirs)[beat_slot])
        issued = self._issue(m, sel, beat_slot)
        m.submodules.lanes = datapath = IntegerLanes(p)
        self._execute(m, executing, table_phase, datapath)
        new_result, new_index = self._reduce(m, slots, executing, datapath)

        # The beat register: the issued beat, or VTBL's element while it reads its table.
        with m.If(table_phase):
            m.d.sync += [executing.table_read.eq(1), executing.x0.eq(datapath.xs[0])]
        with m.Else():
            m.d.sync += executing.eq(issued)
        in_flight_next = Mux(table_phase, executing.slot, beat_slot)
        flying_next = table_phase | self.beat
        skips = []
        for n, slot in enumerate(slots):
            popped_here = pop_by_slot & (pop_slot == n)
            executes_here = self.execute & (executing.slot == n)
            skips.append(self._sequence(m, n, slot, sel, issued, popped_here, beat_slot,
                                        flying_next & (in_flight_next == n), executes_here,
                                        new_result, new_index))
        m.d.comb += self.zero_skips.eq(sum(skips))
        return m

    def _arbitrate_pop(self, m, slots):
        """Fabric input: at most one wavelet a cycle, for a slot or for RECV.  Returns
        ``(by_slot, slot)``: a slot takes it, and which."""
        wants = [Signal(name=f"stager{n}_wants") for n in range(SLOTS)]
        for n, slot in enumerate(slots):
            state = slot.state
            m.d.comb += wants[n].eq(self.run & slot.active & state.has_fin
                                    & (slot.fin_popped != state.fin_length) & (slot.staged != 2)
                                    & self.nonempty.bit_select(state.fin_color, 1))
        pop_turn = Signal(range(SLOTS))
        pop_slot = Signal(range(SLOTS))
        by_slot = Signal()
        m.d.comb += [
            by_slot.eq(wants[0] | wants[1]),
            pop_slot.eq(Mux(wants[0] & wants[1], pop_turn, wants[1])),
            self.pop_for_recv.eq(~by_slot & self.recv_wants),
            self.pop_valid.eq(by_slot | self.pop_for_recv),
            self.pop_color.eq(Mux(by_slot, Array(s.state.fin_color for s in slots)[pop_slot],
                                  self.recv_color)),
        ]
        with m.If(by_slot):
            m.d.sync += pop_turn.eq(~pop_slot)
        return by_slot, pop_slot

    def _arbitrate_beat(self, m, slots, table_phase):
        """One slot issues a beat: the ready ones take turns."""
        ready = [Signal(name=f"slot{n}_ready") for n in range(SLOTS)]
        for n, slot in enumerate(slots):
            dst = slot.state.dst
            m.d.comb += ready[n].eq(slot.active & ~slot.done
                                    & ~(slot.state.has_fin & (slot.staged == 0))
                                    & ~(is_kind(dst, Kind.FOUT)
                                        & ~self.credit_free.bit_select(dst.stride, 1)))
        beat_turn = Signal(range(SLOTS))
        beat_slot = Signal(range(SLOTS))
        m.d.comb += [self.beat.eq(self.run & ~table_phase & (ready[0] | ready[1])),
                     beat_slot.eq(Mux(ready[0] & ready[1], beat_turn, ready[1]))]
        with m.If(self.beat):
            m.d.sync += beat_turn.eq(~beat_slot)
        return beat_slot

    def _issue(self, m, sel, beat_slot):
        """The issuing beat: its windows' addresses, its credit, and its register
        (returned, for the next cycle)."""
        p, lanes, state = self._params, self._params.lanes, sel.state
        remaining = state.elements - sel.position
        count = Signal(range(lanes + 1))
        m.d.comb += count.eq(Mux(state.parallel & (remaining >= lanes), lanes,
                                 Mux(state.parallel, remaining, 1)))
        src_offset = Mux(state.fin_is_scalar, sel.staged_offset[0], 0)
        reducing = Cat(state.op == o for o in (Op.VSUM, Op.VRMAX, Op.VARGMAX)).any()
        scalar_flag = state.flags.bit_select(VFlag.SCALAR.bit_length() - 1, 1)
        reads_src2 = Cat(state.op == o for o in (Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN,
                                                 Op.VMAC)).any() & ~scalar_flag
        reads_src2_mem = reads_src2 & is_kind(state.src2, Kind.MEM)
        sends = self.beat & ~reducing & is_kind(state.dst, Kind.FOUT)
        issued = Signal(beat_layout(p))
        m.d.comb += [
            self.src_first.eq(state.src.base + src_offset + sel.cursors[1]),
            self.src2_first.eq(state.src2.base + sel.cursors[2]),
            self.dst_first.eq(state.dst.base + sel.cursors[0]),
            self.reserve.eq(sends), self.reserve_color.eq(state.dst.stride),
            self.issue_sends.eq(sends),
            issued.valid.eq(self.beat), issued.slot.eq(beat_slot),
            issued.op.eq(state.op), issued.flags.eq(state.flags),
            issued.count.eq(count), issued.lane_valid.eq(Cat(count > k for k in range(lanes))),
            issued.position.eq(sel.position),
            issued.last.eq(sel.position + count == state.elements),
            issued.reducing.eq(reducing), issued.rd.eq(state.rd),
            issued.dst_kind.eq(state.dst.kind), issued.dst_first.eq(self.dst_first),
            issued.dst_color.eq(state.dst.stride),
            issued.src_kind.eq(state.src.kind), issued.src2_kind.eq(state.src2.kind),
            issued.src2_base.eq(state.src2.base), issued.src2_length.eq(state.src2.length),
            issued.fin_is_scalar.eq(state.fin_is_scalar), issued.scalar_flag.eq(scalar_flag),
            issued.fabric.eq(sel.staged_value[0]), issued.scalar.eq(state.scalar),
        ]
        with m.If(self.beat):
            m.d.comb += self.sram_reads.eq(
                Mux(is_kind(state.src, Kind.MEM), count, 0) + Mux(reads_src2_mem, count, 0))
            m.d.comb += self.reads_b.eq(reads_src2_mem)
        return issued

    def _execute(self, m, executing, table_phase, datapath):
        """The executing beat: its operands from the windows, the lanes, its results; and
        VTBL's table read (the index from the element just arrived)."""
        lanes = self._params.lanes
        m.d.comb += self.execute.eq(executing.valid & ~table_phase)

        def operand(kind, mem, acc, k):
            return Mux(kind == Kind.MEM, mem[k].as_signed(),
                       Mux(kind == Kind.ACC, acc[k].as_signed(), executing.fabric.as_signed()))

        for k in range(lanes):
            x = operand(executing.src_kind, self.mem_a, self.acc_a, k)
            if k == 0:           # VTBL keeps its element while it reads its table
                x = Mux(executing.table_read, executing.x0.as_signed(), x)
            m.d.comb += [
                datapath.xs[k].eq(x),
                datapath.ys[k].eq(Mux(executing.fin_is_scalar, executing.fabric.as_signed(),
                                      Mux(executing.scalar_flag, executing.scalar.as_signed(),
                                          operand(executing.src2_kind, self.mem_b, self.acc_b,
                                                  k)))),
                datapath.accs[k].eq(self.acc_d[k]),
                self.values[k].eq(datapath.values[k]),
            ]
        m.d.comb += [datapath.op.eq(executing.op), datapath.flags.eq(executing.flags),
                     datapath.lane_valid.eq(executing.lane_valid),
                     datapath.table.eq(Cat(self.mem_b[k] for k in range(4))),
                     datapath.table_length.eq(executing.src2_length)]

        # VTBL: the index into the table, from lane 0 of the source.
        table_low = Signal(16)
        index = datapath.table_index
        m.d.comb += index.eq(datapath.xs[0] >> executing.flags[:5])
        with m.If(index < 0):
            m.d.comb += table_low.eq(0)
        with m.Elif(index > executing.src2_length - 2):
            m.d.comb += table_low.eq(executing.src2_length - 2)
        with m.Else():
            m.d.comb += table_low.eq(index)
        with m.If(table_phase):
            m.d.comb += [self.reads_b.eq(1), self.sram_reads.eq(4),
                         self.src2_first.eq(executing.src2_base + (table_low << 1))]

        writes = self.execute & ~executing.reducing
        m.d.comb += [
            self.writes_mem.eq(writes & (executing.dst_kind == Kind.MEM)),
            self.writes_acc.eq(writes & (executing.dst_kind == Kind.ACC)),
            self.sends.eq(writes & (executing.dst_kind == Kind.FOUT)),
            self.write_first.eq(executing.dst_first), self.lane_valid.eq(executing.lane_valid),
            self.send_wavelet.data.eq(datapath.values[0]),
            self.send_wavelet.color.eq(executing.dst_color),
            self.sram_writes.eq(Mux(self.writes_mem, executing.count, 0)),
        ]

    def _reduce(self, m, slots, executing, datapath):
        """A reduction's running result and index after the executing beat; its register
        write on the last beat."""
        result = Array(slot.result for slot in slots)[executing.slot]
        result_index = Array(slot.result_index for slot in slots)[executing.slot]
        new_result = Signal(32)
        new_index = Signal(16)
        improves = datapath.best > result.as_signed()
        m.d.comb += [
            new_result.eq(Mux(executing.op == Op.VSUM, result + datapath.lane_sum,
                              Mux(improves, datapath.best, result))),
            new_index.eq(Mux(improves, executing.position + datapath.best_lane, result_index)),
            self.reduction_done.eq(self.execute & executing.reducing & executing.last),
            self.reduction_rd.eq(executing.rd),
            self.reduction_value.eq(Mux(executing.op == Op.VARGMAX, new_index, new_result)),
        ]
        return new_result, new_index

    def _sequence(self, m, n, slot, sel, issued, popped_here, beat_slot, in_flight_next,
                  executes_here, new_result, new_index):
        """Slot ``n``'s registers: launch, staging, the issued beat's progress, the executed
        beat's result, finishing.  Returns the zero scalars it drops this cycle (0 or 1)."""
        state = slot.state
        here = self.beat & (beat_slot == n)
        count, chunk_done = issued.count, issued.last
        last_beat = here & chunk_done
        keep = Signal(name=f"slot{n}_keep")     # the popped value is staged
        m.d.comb += keep.eq(popped_here & ~(state.fin_is_scalar & (self.popped == 0)))
        consume = Signal(name=f"slot{n}_consume")
        m.d.comb += consume.eq(here & state.has_fin & (~state.fin_is_scalar | last_beat))
        staged_next = Signal(range(3), name=f"slot{n}_staged_next")
        m.d.comb += staged_next.eq(slot.staged + keep - consume)
        popped_next = slot.fin_popped + popped_here
        issued_all = Signal(name=f"slot{n}_issued_all")
        m.d.comb += issued_all.eq(Mux(state.fin_is_scalar,
                                      (popped_next == state.fin_length) & (staged_next == 0),
                                      slot.done | last_beat))

        with m.If(popped_here):
            m.d.sync += [slot.fin_popped.eq(popped_next),
                         slot.fin_offset.eq(slot.fin_offset + state.chunk_step)]
        m.d.sync += slot.staged.eq(staged_next)
        # The staging buffer: entry 0 is the head.
        with m.If(consume):
            m.d.sync += [slot.staged_value[0].eq(slot.staged_value[1]),
                         slot.staged_offset[0].eq(slot.staged_offset[1])]
        with m.If(keep):
            with m.If(slot.staged - consume == 0):
                m.d.sync += [slot.staged_value[0].eq(self.popped),
                             slot.staged_offset[0].eq(slot.fin_offset)]
            with m.Else():
                m.d.sync += [slot.staged_value[1].eq(self.popped),
                             slot.staged_offset[1].eq(slot.fin_offset)]
        with m.If(here):
            m.d.sync += slot.position.eq(Mux(chunk_done, 0, sel.position + count))
            for cursor, descriptor in zip(slot.cursors, (state.dst, state.src, state.src2)):
                step = Mux(state.parallel, count, element_step(descriptor))
                restart = chunk_done & state.fin_is_scalar & (cursor is not slot.cursors[2])
                m.d.sync += cursor.eq(Mux(restart, 0, cursor + step))
            with m.If(last_beat & ~state.fin_is_scalar):
                m.d.sync += slot.done.eq(1)
        with m.If(executes_here):
            m.d.sync += [slot.result.eq(new_result), slot.result_index.eq(new_index)]
        # Active until every beat has been issued and the last has executed.
        with m.If(slot.active & issued_all & ~in_flight_next):
            m.d.sync += slot.active.eq(0)
        with m.If(self.launch & (self.launch_slot == n)):
            m.d.sync += [state.eq(self.launch_state), slot.position.eq(0),
                         *(cursor.eq(0) for cursor in slot.cursors), slot.fin_popped.eq(0),
                         slot.fin_offset.eq(0), slot.staged.eq(0), slot.done.eq(0),
                         *(value.eq(0) for value in slot.staged_value),
                         *(offset.eq(0) for offset in slot.staged_offset),
                         slot.result.eq(self.launch_state.result), slot.result_index.eq(0),
                         slot.active.eq(self.launch_activates)]
        return popped_here & ~keep
