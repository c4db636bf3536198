"""The vector unit: two microthread slots sharing one datapath, a beat a cycle.

Each cycle, as :mod:`sim.iss` specifies:

1. *Fabric input.*  A slot whose operation reads a ``FIN`` operand wants a
   wavelet while its staging buffer has room, it needs more and its color's queue
   holds one; the slots take turns, and ``RECV`` (the scalar unit's) is served
   only when no slot wants one.
2. *Issue.*  Of the slots that can make progress (an element staged when they
   read the fabric, a credit when they send to it) one issues a beat, the slots
   taking turns: it addresses the memory windows at its cursors (``src_first``,
   ``src2_first``), takes its staged element and its credit (``reserve``), and
   advances.  Nothing issues while ``VTBL`` reads its table (``reads_b``).
3. *E1 to E4*, and to E6 for a long beat, from the beat registers
   (:func:`beat_layout`), one stage a cycle and never stalling.  E1 selects each
   lane's operands from the windows, the staged element or the scalar;
   :class:`rtl.core.lanes.IntegerLanes` and, for ``VTBL``,
   :class:`rtl.core.table.TableLookup` compute in E2 and E3, and
   :class:`rtl.core.float_lanes.FloatLanes` from E2 to E6; E3 addresses the
   destination's accumulators (``accumulate_first``), and in the beat's last
   stage (E4, or E6) the results go to SRAM, the accumulators or the ramp
   (``writes_mem``, ``writes_acc``, ``sends``), or a reduction's register
   (``reduction_*``).  The issue rules of :mod:`sim.iss` keep that to one beat a
   cycle.

Ports: ``launch_*`` starts an operation in a slot (from the scalar unit, which has
checked it); ``active`` shows which slots are busy, from launch until their last
beat has left E4.  ``activity`` (:func:`activity_layout`) shows, for traces, what the
slots hold and which issues a beat in this cycle; nothing in the core reads it.  ``quiet``: no launch, no beat issues or is in flight and no slot
finishes, so that only a wavelet or a credit can change a slot (and the pipeline's
empty stages, which carry what the idle issue presents).  Reset: both slots idle, no
beat in flight.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..isa import SLOTS, Dtype, Kind, Op, VFlag
from ..wavelet import wavelet_layout
from .float_lanes import FloatLanes
from .lanes import IntegerLanes
from .slots import Slot, beat_layout, element_step, is_kind, is_wide, launch_layout
from .table import TableLookup

__all__ = ["VectorUnit", "activity_layout"]


def activity_layout():
    """The vector unit in one cycle, as a trace shows it (:mod:`host.trace`): which slots
    are active, the opcode each holds (an :class:`rtl.isa.Op`, as launched), and whether a
    beat issues and from which slot."""
    return data.StructLayout({"active": SLOTS, "op": data.ArrayLayout(6, SLOTS), "beat": 1,
                              "beat_slot": range(SLOTS)})


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
            "activity": Out(activity_layout()),
            "quiet": Out(1),
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
            "accumulate_first": Out(16),       # addressed in E3
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
            "writes_mem": Out(1),
            "writes_acc": Out(1),
            "write_first": Out(16),
            "sends": Out(1),
            "send_wavelet": Out(wavelet_layout(p)),
            "mem_bytes": Out(8).array(lanes),    # for the SRAM
            "mem_mask": Out(lanes),
            "acc_values": Out(32).array(lanes),  # for the accumulators
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
        stages = [Signal(beat_layout(p), name=f"beat_e{n}") for n in range(1, 7)]
        m.submodules.lanes = datapath = IntegerLanes(p)
        m.submodules.table = table = TableLookup()
        floats = None
        if p.float_lanes:
            m.submodules.float_lanes = floats = FloatLanes(p)
        beat_slot = self._arbitrate_beat(m, slots, table.reads, stages)
        m.d.comb += [self.activity.active.eq(self.active), self.activity.beat.eq(self.beat),
                     self.activity.beat_slot.eq(beat_slot),
                     *(self.activity.op[n].eq(slot.state.op) for n, slot in enumerate(slots))]

        # The issuing slot, through one multiplexer per register.
        sel = Slot(p, "beat")
        for mine, *theirs in zip(sel.registers(), *(s.registers() for s in slots)):
            m.d.comb += mine.eq(Array(Value.cast(v) for v in theirs)[beat_slot])
        issued = self._issue(m, sel, beat_slot, table)
        m.d.sync += [stage.eq(previous) for stage, previous in zip(stages, [issued, *stages])]
        self._operands(m, stages[0], datapath, table, floats)
        writer = self._execute(m, stages, datapath, table, floats, slots)

        skips, finishing = [], []
        for n, slot in enumerate(slots):
            popped_here = pop_by_slot & (pop_slot == n)
            # A beat stays in flight to E4, a long one to E6.
            in_flight_next = Cat(self.beat & (beat_slot == n),
                                 *(stage.valid & (stage.slot == n) & (stage.long if k >= 3 else 1)
                                   for k, stage in enumerate(stages[:5]))).any()
            executes_here = writer.valid & (writer.slot == n)
            new_result = (Mux(writer.long, floats.new_sum, datapath.new_result)
                          if floats is not None else datapath.new_result)
            skip, finishes = self._sequence(m, n, slot, sel, issued, popped_here, beat_slot,
                                            in_flight_next, executes_here, datapath, new_result)
            skips.append(skip)
            finishing.append(finishes)
        m.d.comb += [self.zero_skips.eq(sum(skips)),
                     self.quiet.eq(~self.launch & ~self.beat & ~Cat(*finishing).any()
                                   & ~Cat(stage.valid for stage in stages).any())]
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

    def _arbitrate_beat(self, m, slots, table_read, stages):
        """One slot issues a beat: the ready ones take turns.  A short beat waits while a
        long one is in E1 or E2, and a float accumulation while a beat of its slot at its
        position (VSUM: any beat of its slot) is (:mod:`sim.iss`)."""
        ready = [Signal(name=f"slot{n}_ready") for n in range(SLOTS)]
        early = stages[:2]
        long_early = Cat(stage.valid & stage.long for stage in early).any()
        for n, slot in enumerate(slots):
            state, dst = slot.state, slot.state.dst
            waits_for_sum = Cat(stage.valid & (stage.slot == n)
                                & ((state.op == Op.VSUM) | (stage.position == slot.position))
                                for stage in early).any()
            m.d.comb += ready[n].eq(slot.active & ~slot.done
                                    & ~(state.has_fin & (slot.staged == 0))
                                    & ~(is_kind(dst, Kind.FOUT)
                                        & ~self.credit_free.bit_select(dst.stride, 1))
                                    & ~(~state.long & long_early)
                                    & ~(state.chained & waits_for_sum))
        beat_turn = Signal(range(SLOTS))
        beat_slot = Signal(range(SLOTS))
        m.d.comb += [self.beat.eq(self.run & ~table_read & (ready[0] | ready[1])),
                     beat_slot.eq(Mux(ready[0] & ready[1], beat_turn, ready[1]))]
        with m.If(self.beat):
            m.d.sync += beat_turn.eq(~beat_slot)
        return beat_slot

    def _issue(self, m, sel, beat_slot, table):
        """The issuing beat: its windows' addresses, its credit, and its register
        (returned, for the next cycle)."""
        p, lanes, state = self._params, self._params.lanes, sel.state
        remaining = sel.remaining
        count = Signal(range(lanes + 1))
        width = Mux(state.floating, p.float_width, lanes)
        m.d.comb += count.eq(Mux(state.parallel & (remaining >= width), width,
                                 Mux(state.parallel, remaining, 1)))
        src_offset = Mux(state.fin_is_scalar, sel.staged_offset[0], 0)
        reducing = Cat(state.op == o for o in (Op.VSUM, Op.VRMAX, Op.VARGMAX)).any()
        scalar_flag = state.flags.bit_select(VFlag.SCALAR.bit_length() - 1, 1)
        reads_src2 = Cat(state.op == o for o in (Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN,
                                                 Op.VMAC, Op.VDEQ)).any() & ~scalar_flag
        reads_src2_mem = reads_src2 & is_kind(state.src2, Kind.MEM)
        sends = self.beat & ~reducing & is_kind(state.dst, Kind.FOUT)
        issued = Signal(beat_layout(p))
        m.d.comb += [
            self.src_first.eq(state.src.base + src_offset + sel.cursors[1]),
            self.src2_first.eq(state.src2.base + sel.cursors[2]),
            self.reserve.eq(sends), self.reserve_color.eq(state.dst.stride),
            self.issue_sends.eq(sends),
            issued.valid.eq(self.beat), issued.slot.eq(beat_slot),
            issued.op.eq(state.op), issued.flags.eq(state.flags),
            issued.count.eq(count), issued.lane_valid.eq(Cat(count > k for k in range(lanes))),
            issued.position.eq(sel.position),
            issued.last.eq(Mux(state.parallel, remaining <= width, remaining == 1)),
            issued.reducing.eq(reducing), issued.rd.eq(state.rd),
            issued.dst_kind.eq(state.dst.kind),
            issued.dst_first.eq(state.dst.base + sel.cursors[0]),
            issued.dst_color.eq(state.dst.stride),
            issued.src_kind.eq(state.src.kind), issued.src2_kind.eq(state.src2.kind),
            issued.src2_base.eq(state.src2.base), issued.src2_length.eq(state.src2.length),
            issued.fin_is_scalar.eq(state.fin_is_scalar), issued.scalar_flag.eq(scalar_flag),
            issued.fabric.eq(sel.staged_value[0]), issued.scalar.eq(state.scalar),
            issued.floating.eq(state.floating), issued.long.eq(state.long),
            issued.x_from.eq(state.x_from), issued.y_from.eq(state.y_from),
            issued.raw_x.eq(state.raw_x), issued.convert.eq(state.convert),
            issued.src_wide.eq(is_wide(state.src)), issued.src2_wide.eq(is_wide(state.src2)),
            issued.dst_wide.eq(is_wide(state.dst)),
        ]
        with m.If(self.beat):
            m.d.comb += self.sram_reads.eq(
                Mux(is_kind(state.src, Kind.MEM), count << issued.src_wide, 0)
                + Mux(reads_src2_mem, count << issued.src2_wide, 0))
            m.d.comb += self.reads_b.eq(reads_src2_mem)
        with m.If(table.reads):                        # VTBL's table, in E2
            m.d.comb += [self.reads_b.eq(1), self.sram_reads.eq(4),
                         self.src2_first.eq(table.address)]
        return issued

    def _operands(self, m, beat, datapath, table, floats):
        """E1: each lane's operands, from the windows, the staged element or the scalar."""
        lanes = self._params.lanes

        def operand(kind, mem, acc, k):
            return Mux(kind == Kind.MEM, mem[k].as_signed(),
                       Mux(kind == Kind.ACC, acc[k].as_signed(), beat.fabric.as_signed()))

        def second(operand_k):
            return Mux(beat.fin_is_scalar, beat.fabric.as_signed(),
                       Mux(beat.scalar_flag, beat.scalar.as_signed(), operand_k))

        xs = [operand(beat.src_kind, self.mem_a, self.acc_a, k) for k in range(lanes)]
        for k in range(lanes):
            m.d.comb += [
                datapath.xs[k].eq(xs[k]),
                datapath.ys[k].eq(second(operand(beat.src2_kind, self.mem_b, self.acc_b, k))),
            ]
        m.d.comb += [datapath.op.eq(beat.op), datapath.flags.eq(beat.flags),
                     datapath.lane_valid.eq(beat.lane_valid),
                     datapath.position.eq(beat.position),
                     table.valid.eq(beat.valid & (beat.op == Op.VTBL)),
                     table.x.eq(xs[0]), table.flags.eq(beat.flags),
                     table.base.eq(beat.src2_base), table.length.eq(beat.src2_length)]
        if floats is None:
            return

        def float_operand(kind, wide, mem, acc, k):
            """A float lane's raw element: 2 bytes of MEM (int8: 1), a word otherwise."""
            bytes_k = Mux(wide, Cat(mem[2 * k], mem[2 * k + 1]), mem[k].as_signed())
            return Mux(kind == Kind.MEM, bytes_k, Mux(kind == Kind.ACC, acc[k], beat.fabric))

        m.d.comb += [floats.op.eq(beat.op), floats.convert.eq(beat.convert),
                     floats.x_from.eq(beat.x_from), floats.y_from.eq(beat.y_from),
                     floats.raw_x.eq(beat.raw_x)]
        for k in range(self._params.float_width):
            m.d.comb += [
                floats.xs[k].eq(float_operand(beat.src_kind, beat.src_wide, self.mem_a,
                                              self.acc_a, k)),
                floats.ys[k].eq(second(float_operand(beat.src2_kind, beat.src2_wide, self.mem_b,
                                                     self.acc_b, k))),
            ]
            # The float maxima rank on the integer comparators, by rtl.isa's key.
            widened = floats.widened_xs[k]
            with m.If(beat.floating):
                m.d.comb += datapath.xs[k].eq(widened ^ Mux(widened[31], 0x7FFFFFFF, 0))

    def _execute(self, m, stages, datapath, table, floats, slots):
        """E3 addresses the accumulators; the beat in its last stage (E4, or E6 for a long
        one) writes, sends, or ends a reduction.  Returns that beat (its register view)."""
        p, lanes = self._params, self._params.lanes
        accumulating, short, long = stages[2], stages[3], stages[5]
        writer = Signal(beat_layout(p), name="beat_writing")
        long_writes = long.valid & long.long
        m.d.comb += [writer.eq(Mux(long_writes, long, short)),
                     writer.valid.eq(long_writes | short.valid & ~short.long)]
        m.d.comb += [self.accumulate_first.eq(accumulating.dst_first),
                     table.entries.eq(Cat(self.mem_b[k] for k in range(4)))]
        values = []
        for k in range(lanes):
            value, sum_k = datapath.values[k], datapath.accumulated[k]
            if k == 0:
                value = Mux(short.op == Op.VTBL, table.value, value)
                sum_k = Mux(short.op == Op.VTBL, table.value, sum_k)
            if floats is not None and k < p.float_width:
                value = Mux(writer.long, floats.values[k], value)
                sum_k = Mux(writer.long, floats.values[k], sum_k)
                m.d.comb += floats.accs[k].eq(self.acc_d[k])
            m.d.comb += [datapath.accs[k].eq(self.acc_d[k]), self.acc_values[k].eq(sum_k)]
            values.append(value)
        # SRAM bytes: a lane's low byte, or a float lane's two bytes of fp16 or bf16.
        wide = writer.dst_wide
        for j in range(lanes):
            low, high = values[j // 2][:8], values[j // 2][8:16]
            m.d.comb += [self.mem_bytes[j].eq(Mux(wide, high if j % 2 else low, values[j][:8])),
                         self.mem_mask[j].eq(Mux(wide, writer.lane_valid[j // 2],
                                                 writer.lane_valid[j]))]
        writes = writer.valid & ~writer.reducing
        m.d.comb += [
            self.writes_mem.eq(writes & (writer.dst_kind == Kind.MEM)),
            self.writes_acc.eq(writes & (writer.dst_kind == Kind.ACC)),
            self.sends.eq(writes & (writer.dst_kind == Kind.FOUT)),
            self.write_first.eq(writer.dst_first), self.lane_valid.eq(writer.lane_valid),
            self.send_wavelet.data.eq(values[0]),
            self.send_wavelet.color.eq(writer.dst_color),
            self.sram_writes.eq(Mux(self.writes_mem, writer.count << wide, 0)),
        ]
        # A reduction's running result, from the slot of the beat in E4 (and for VSUM's
        # float sum, which the adder takes in E4 too).
        running = Array(slot.result for slot in slots)[short.slot]
        m.d.comb += [
            datapath.result.eq(running),
            datapath.result_index.eq(Array(slot.result_index for slot in slots)[short.slot]),
            self.reduction_done.eq(writer.valid & writer.reducing & writer.last),
            self.reduction_rd.eq(writer.rd),
        ]
        maximum = datapath.new_result
        maximum = Mux(writer.floating, maximum ^ Mux(maximum[31], 0x7FFFFFFF, 0), maximum)
        result = Mux(writer.op == Op.VARGMAX, datapath.new_index, maximum)
        if floats is not None:
            m.d.comb += floats.sum.eq(running)
            result = Mux(writer.long, floats.new_sum, result)
        m.d.comb += self.reduction_value.eq(result)
        return writer

    def _sequence(self, m, n, slot, sel, issued, popped_here, beat_slot, in_flight_next,
                  executes_here, datapath, new_result):
        """Slot ``n``'s registers: launch, staging, the issued beat's progress, the executed
        beat's result, finishing.  Returns the zero scalars it drops this cycle (0 or 1) and
        whether the slot finishes."""
        state = slot.state
        here = self.beat & (beat_slot == n)
        count, chunk_done = issued.count, issued.last
        last_beat = here & chunk_done
        keep = Signal(name=f"slot{n}_keep")     # the popped value is staged
        # VMACS drops a zero scalar: an integer 0, or a float +0 or -0 of its type.
        zero = Mux(state.fin_dtype == Dtype.INT, self.popped == 0,
                   Mux(state.fin_dtype == Dtype.FP32, self.popped[:31] == 0,
                       self.popped[:15] == 0))
        m.d.comb += keep.eq(popped_here & ~(state.fin_is_scalar & zero))
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
            m.d.sync += [slot.position.eq(Mux(chunk_done, 0, sel.position + count)),
                         slot.remaining.eq(Mux(chunk_done, state.elements, sel.remaining - count))]
            for cursor, descriptor in zip(slot.cursors, (state.dst, state.src, state.src2)):
                step = Mux(state.parallel, count << is_wide(descriptor), element_step(descriptor))
                restart = chunk_done & state.fin_is_scalar & (cursor is not slot.cursors[2])
                m.d.sync += cursor.eq(Mux(restart, 0, cursor + step))
            with m.If(last_beat & ~state.fin_is_scalar):
                m.d.sync += slot.done.eq(1)
        with m.If(executes_here):
            m.d.sync += [slot.result.eq(new_result), slot.result_index.eq(datapath.new_index)]
        # Active until every beat has been issued and the last has executed.
        finishes = slot.active & issued_all & ~in_flight_next
        with m.If(finishes):
            m.d.sync += slot.active.eq(0)
        with m.If(self.launch & (self.launch_slot == n)):
            m.d.sync += [state.eq(self.launch_state), slot.position.eq(0),
                         slot.remaining.eq(self.launch_state.elements),
                         *(cursor.eq(0) for cursor in slot.cursors), slot.fin_popped.eq(0),
                         slot.fin_offset.eq(0), slot.staged.eq(0), slot.done.eq(0),
                         *(value.eq(0) for value in slot.staged_value),
                         *(offset.eq(0) for offset in slot.staged_offset),
                         slot.result.eq(self.launch_state.result), slot.result_index.eq(0),
                         slot.active.eq(self.launch_activates)]
        return popped_here & ~keep, finishes
