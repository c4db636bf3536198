"""The processing element of a tile: scalar control, tasks, two vector microthreads.

The behaviour and the timing are specified by the instruction-set simulator,
:mod:`sim.iss`, whose docstring describes a cycle; the encoding is
:mod:`rtl.isa`.  This RTL matches the ISS cycle for cycle.

Structure:

- a code memory (``code_bytes``) read combinationally at the PC, and a
  scalar unit that completes one instruction per cycle unless it waits;
- data SRAM of ``sram_bytes - code_bytes`` bytes in ``lanes`` byte-wide banks
  and an accumulator file of ``acc_words`` int32 in ``lanes`` banks
  (:mod:`rtl.core.banks`), so a stride-1 vector is ``lanes`` elements a cycle;
- two microthread slots (:class:`Slot`), each holding one vector operation
  with its operand descriptors, cursors and a two-entry staging buffer for
  fabric input; one slot runs a beat each cycle;
- one queue per color for wavelets from the router, and one credit counter
  per color for wavelets to it (the ramp, :class:`rtl.wavelet.LinkSignature`);
- a back door (:func:`backdoor_signature`) that loads and reads the memories
  and registers while the core is disabled.

SRAM reads are combinational, a modelling simplification: a beat reads its
operands, computes and writes in one cycle.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..isa import (COUNTERS, DESCRIPTORS, INSTRUCTION, OPS, REGISTERS, SEND_CTRL, SLOTS, TASKS,
                   Counter,
                   Fault, Format, Kind, Op, VFlag)
from ..router import Packed
from ..wavelet import DATA_BITS, LinkSignature, LoaderTag, load_color
from .banks import Banks

__all__ = ["Core", "core_signature", "backdoor_signature"]

INT32_MIN = -(1 << 31)


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


def core_signature(params):
    return wiring.Signature({
        "from_router": In(LinkSignature(params)),    # the router's ramp output
        "to_router": Out(LinkSignature(params)),     # the router's ramp input
        "enable": In(1),
        "backdoor": In(backdoor_signature(params)),
        "halted": Out(1),
        "idle": Out(1),                              # halted, and both slots finished
        "fault": Out(3),                             # an rtl.isa.Fault
        "fault_pc": Out(16),
        "pc": Out(16),
        "counters": Out(32).array(COUNTERS),
    })


class Descriptor:
    """The fields of a descriptor register, as signals."""

    def __init__(self, name):
        self.kind = Signal(3, name=f"{name}_kind")
        self.base = Signal(16, name=f"{name}_base")
        self.length = Signal(16, name=f"{name}_length")
        self.stride = Signal(16, name=f"{name}_stride")    # MEM stride, or FIN/FOUT color

    def fields(self):
        return [self.kind, self.base, self.length, self.stride]

    def eq(self, other):
        return [mine.eq(theirs) for mine, theirs in zip(self.fields(), other.fields())]

    def is_(self, kind):
        return self.kind == kind

    @property
    def color(self):
        return self.stride

    def step(self):
        """Address step of one element: the stride of MEM, 1 for ACC."""
        return Mux(self.is_(Kind.MEM), self.stride, 1)


def _pick(m, options, index, name):
    """A Descriptor that shows ``options[index]``."""
    chosen = Descriptor(name)
    for mine, *theirs in zip(chosen.fields(), *(o.fields() for o in options)):
        m.d.comb += mine.eq(Array(theirs)[index])
    return chosen


class Slot:
    """One vector microthread's registers."""

    def __init__(self, params, n):
        name = f"slot{n}"
        self.active = Signal(name=f"{name}_active")
        self.op = Signal(6, name=f"{name}_op")
        self.flags = Signal(14, name=f"{name}_flags")
        self.dst, self.src, self.src2 = (Descriptor(f"{name}_{role}")
                                         for role in ("dst", "src", "src2"))
        self.scalar = Signal(32, name=f"{name}_scalar")
        self.parallel = Signal(name=f"{name}_parallel")
        self.rd = Signal(4, name=f"{name}_rd")
        self.elements = Signal(16, name=f"{name}_elements")
        self.position = Signal(16, name=f"{name}_position")
        self.cursors = [Signal(16, name=f"{name}_cursor_{role}") for role in ("dst", "src", "src2")]
        self.has_fin = Signal(name=f"{name}_has_fin")
        self.fin_is_scalar = Signal(name=f"{name}_fin_is_scalar")
        self.fin_color = Signal(params.color_bits, name=f"{name}_fin_color")
        self.fin_length = Signal(16, name=f"{name}_fin_length")
        self.fin_popped = Signal(16, name=f"{name}_fin_popped")
        self.chunk_step = Signal(16, name=f"{name}_chunk_step")     # src address step per scalar
        self.fin_offset = Signal(16, name=f"{name}_fin_offset")     # src offset of the next scalar
        self.staged = Signal(range(3), name=f"{name}_staged")
        self.staged_value = [Signal(32, name=f"{name}_staged{k}_value") for k in range(2)]
        self.staged_offset = [Signal(16, name=f"{name}_staged{k}_offset") for k in range(2)]
        self.result = Signal(32, name=f"{name}_result")
        self.result_index = Signal(16, name=f"{name}_result_index")

    def registers(self):
        """Every register of the slot, in a fixed order (for the beat's multiplexers)."""
        return [self.op, self.flags, *self.dst.fields(), *self.src.fields(), *self.src2.fields(),
                self.scalar, self.parallel, self.rd, self.elements, self.position, *self.cursors,
                self.has_fin, self.fin_is_scalar, self.fin_color, self.fin_length, self.fin_popped,
                self.chunk_step, self.fin_offset, self.staged, *self.staged_value,
                *self.staged_offset, self.result, self.result_index]


class Core(wiring.Component):
    """One core; see the module docstring and :mod:`sim.iss`."""

    def __init__(self, params):
        self._params = params
        super().__init__(core_signature(params))

    @property
    def params(self):
        return self._params

    def elaborate(self, platform):
        m = Module()
        p = self._params
        lanes = p.lanes
        run = self.enable

        # --- state ---
        pc = Signal(16)
        running = Signal(init=1)
        halted = Signal()
        fault = Signal(3)
        fault_pc = Signal(16)
        waiting = Signal()
        waiting_slot = Signal(range(SLOTS))
        regs = Array(Signal(32, name=f"r{n}") for n in range(REGISTERS))
        dsr = [Descriptor(f"d{n}") for n in range(DESCRIPTORS)]
        task_entry = Array(Signal(16, name=f"task{t}_entry") for t in range(TASKS))
        task_bound = Array(Signal(name=f"task{t}_bound") for t in range(TASKS))
        task_color = Array(Signal(p.color_bits, name=f"task{t}_color") for t in range(TASKS))
        task_active = Array(Signal(name=f"task{t}_active") for t in range(TASKS))
        task_blocked = Array(Signal(name=f"task{t}_blocked") for t in range(TASKS))
        counters = [Signal(32, name=f"counter_{c.name.lower()}") for c in Counter]
        credits = Array(Signal(range(p.queue_depth + 1), init=p.queue_depth, name=f"credit_c{c}")
                        for c in range(p.colors))
        slots = [Slot(p, n) for n in range(SLOTS)]
        pop_turn = Signal(range(SLOTS))
        beat_turn = Signal(range(SLOTS))

        m.d.comb += [self.halted.eq(halted), self.fault.eq(fault), self.fault_pc.eq(fault_pc),
                     self.pc.eq(pc),
                     self.idle.eq(halted & ~Cat(s.active for s in slots).any())]
        for n in range(COUNTERS):
            m.d.comb += self.counters[n].eq(counters[n])
        increments = {c: [] for c in Counter}    # counter -> values added this cycle

        # --- memories ---
        code = Memory(shape=unsigned(32), depth=p.code_words, init=[])
        m.submodules.code = code
        fetch = code.read_port(domain="comb")
        code_write = code.write_port()
        bd = self.backdoor
        m.d.comb += [code_write.addr.eq(bd.code_addr), code_write.data.eq(bd.code_wdata),
                     code_write.en.eq(bd.code_we)]     # the loader, below, may take it
        sram = Banks(m, "sram", lanes, p.data_bytes, 8)
        accs = Banks(m, "acc", lanes, p.acc_words, 32)
        m.d.comb += [bd.mem_rdata.eq(sram.read_row(bd.mem_row, "backdoor")),
                     bd.acc_rdata.eq(accs.read_row(bd.acc_row, "backdoor")),
                     bd.reg_rdata.eq(regs[bd.reg])]
        sram_w_first, sram_w_lanes, sram_w_mask, sram_w_rows = sram.write_port()
        acc_w_first, acc_w_lanes, acc_w_mask, acc_w_rows = accs.write_port()

        # --- ramp input: one queue per color ---
        queue_nonempty, queue_head, pop = self._input_queues(m)

        # --- instruction decode ---
        fetch_ok = pc < p.code_words
        m.d.comb += fetch.addr.eq(pc[:len(fetch.addr)])
        inst = INSTRUCTION(fetch.data)
        opcode, a, b, c = inst.opcode, inst.a, inst.b, inst.c
        imm = inst.imm
        imm_s = Signal(signed(32))       # the immediate, sign-extended
        m.d.comb += imm_s.eq(inst.imm.as_signed())
        known = Const(sum(1 << op for op in Op), 64).bit_select(opcode, 1)
        ra, rb, rc = regs[a], regs[b], regs[c]

        def is_op(*ops):
            return Cat(opcode == op for op in ops).any()

        def fmt(*formats):
            return is_op(*[op for op in Op if OPS[op].format in formats])

        issue = Signal()
        m.d.comb += issue.eq(run & ~halted & running & ~(waiting & Array(s.active for s in slots)[waiting_slot]))
        decoded = Signal()       # the fetched word is an instruction of the ISA
        m.d.comb += decoded.eq(issue & fetch_ok & known)

        # --- fabric input arbitration: one wavelet a cycle ---
        wants = [Signal(name=f"stager{n}_wants") for n in range(SLOTS)]
        for n, slot in enumerate(slots):
            m.d.comb += wants[n].eq(run & slot.active & slot.has_fin & (slot.fin_popped != slot.fin_length)
                                    & (slot.staged != 2)
                                    & queue_nonempty.bit_select(slot.fin_color, 1))
        recv_wants = decoded & is_op(Op.RECV) & (imm < p.colors) & queue_nonempty.bit_select(
            imm[:p.color_bits], 1)
        pop_slot = Signal(range(SLOTS))
        pop_by_slot = Signal()
        pop_by_recv = Signal()
        m.d.comb += [
            pop_by_slot.eq(wants[0] | wants[1]),
            pop_slot.eq(Mux(wants[0] & wants[1], pop_turn, wants[1])),
            pop_by_recv.eq(~pop_by_slot & recv_wants),
            pop.valid.eq(pop_by_slot | pop_by_recv),
            pop.color.eq(Mux(pop_by_slot, Array(s.fin_color for s in slots)[pop_slot],
                             imm[:p.color_bits])),
        ]
        loader_sram = self._loader(m, queue_nonempty, queue_head, pop, code_write, increments)
        with m.If(pop_by_slot):
            m.d.sync += pop_turn.eq(~pop_slot)
        popped = queue_head
        increments[Counter.WAVELETS_IN].append(pop.valid)

        # --- vector beat: one slot a cycle ---
        ready = [Signal(name=f"slot{n}_ready") for n in range(SLOTS)]
        for n, slot in enumerate(slots):
            m.d.comb += ready[n].eq(slot.active & ~(slot.has_fin & (slot.staged == 0))
                                    & ~(slot.dst.is_(Kind.FOUT)
                                        & (credits[slot.dst.color[:p.color_bits]] == 0)))
        beat = Signal()
        beat_slot = Signal(range(SLOTS))
        m.d.comb += [beat.eq(run & (ready[0] | ready[1])),
                     beat_slot.eq(Mux(ready[0] & ready[1], beat_turn, ready[1]))]
        with m.If(beat):
            m.d.sync += beat_turn.eq(~beat_slot)

        # The beat's slot, through one multiplexer per register.
        sel = Slot(p, "_beat")
        for mine, *theirs in zip(sel.registers(), *(s.registers() for s in slots)):
            m.d.comb += mine.eq(Array(theirs)[beat_slot])
        op, flags = sel.op, sel.flags
        shift = flags[:5]

        def sel_is(*ops):
            return Cat(op == o for o in ops).any()

        remaining = sel.elements - sel.position
        count = Signal(range(lanes + 1))
        m.d.comb += count.eq(Mux(sel.parallel & (remaining >= lanes), lanes,
                                 Mux(sel.parallel, remaining, 1)))
        lane_valid = Signal(lanes)
        m.d.comb += lane_valid.eq(Cat(count > k for k in range(lanes)))
        src_offset = Mux(sel.fin_is_scalar, sel.staged_offset[0], 0)
        src_first = (sel.src.base + src_offset + sel.cursors[1])[:16]
        dst_first = (sel.dst.base + sel.cursors[0])[:16]

        # VTBL: the index into the table, from lane 0 of the source.
        uses_table = sel_is(Op.VTBL)
        x0 = Signal(signed(32))
        table_index = Signal(signed(32))
        table_low = Signal(16)
        m.d.comb += table_index.eq(x0 >> shift)
        with m.If(table_index < 0):
            m.d.comb += table_low.eq(0)
        with m.Elif(table_index > sel.src2.length - 2):
            m.d.comb += table_low.eq(sel.src2.length - 2)
        with m.Else():
            m.d.comb += table_low.eq(table_index)
        src2_first = Mux(uses_table, sel.src2.base + (table_low << 1),
                         sel.src2.base + sel.cursors[2])[:16]

        mem_a = sram.read_window(src_first, "a")
        mem_b = sram.read_window(src2_first, "b")
        acc_a = accs.read_window(src_first, "a")
        acc_b = accs.read_window(src2_first, "b")
        acc_d = accs.read_window(dst_first, "d")

        staged_head = sel.staged_value[0].as_signed()
        scalar_flag = flags.bit_select(VFlag.SCALAR.bit_length() - 1, 1)

        def operand(descriptor, mem, acc, k):
            return Mux(descriptor.is_(Kind.MEM), mem[k].as_signed(),
                       Mux(descriptor.is_(Kind.ACC), acc[k].as_signed(), staged_head))

        xs = [Signal(signed(32), name=f"x{k}") for k in range(lanes)]
        ys = [Signal(signed(32), name=f"y{k}") for k in range(lanes)]
        for k in range(lanes):
            m.d.comb += [
                xs[k].eq(operand(sel.src, mem_a, acc_a, k)),
                ys[k].eq(Mux(sel.fin_is_scalar, staged_head,
                             Mux(scalar_flag, sel.scalar.as_signed(),
                                 operand(sel.src2, mem_b, acc_b, k)))),
            ]
        m.d.comb += x0.eq(xs[0])

        # VTBL's interpolation (lane 0).
        entry = [Cat(mem_b[2 * e], mem_b[2 * e + 1]).as_signed() for e in range(2)]
        fraction = Signal(32)
        m.d.comb += fraction.eq(x0.as_unsigned() & ((Const(1, 33) << shift) - 1)[:32])
        table_value = Signal(signed(32))
        with m.If(table_index < 0):
            m.d.comb += table_value.eq(entry[0])
        with m.Elif(table_index >= sel.src2.length - 1):
            m.d.comb += table_value.eq(entry[1])
        with m.Else():
            m.d.comb += table_value.eq(entry[0] + (((entry[1] - entry[0]) * fraction) >> shift))

        rounding = (Const(1, 33) << shift) >> 1     # 2**(shift-1), or 0 for no shift
        wide = flags.bit_select(VFlag.WIDE.bit_length() - 1, 1)
        values = [Signal(signed(32), name=f"value{k}") for k in range(lanes)]
        for k in range(lanes):
            x, y = xs[k], ys[k]
            scaled = Signal(signed(33), name=f"quantised{k}")
            m.d.comb += scaled.eq((x + rounding) >> shift)
            limit = Mux(wide, (1 << 15) - 1, (1 << 7) - 1)
            with m.Switch(op):
                with m.Case(Op.VMOV):
                    m.d.comb += values[k].eq(x)
                with m.Case(Op.VADD):
                    m.d.comb += values[k].eq(x + y)
                with m.Case(Op.VSUB):
                    m.d.comb += values[k].eq(x - y)
                with m.Case(Op.VMUL):
                    m.d.comb += values[k].eq(x * y)
                with m.Case(Op.VMAX):
                    m.d.comb += values[k].eq(Mux(x > y, x, y))
                with m.Case(Op.VMIN):
                    m.d.comb += values[k].eq(Mux(x < y, x, y))
                with m.Case(Op.VQNT):
                    m.d.comb += values[k].eq(Mux(scaled > limit, limit,
                                                 Mux(scaled < -limit - 1, -limit - 1, scaled)))
                with m.Case(Op.VTBL):
                    m.d.comb += values[k].eq(table_value)
                with m.Case(Op.VMAC, Op.VMACS):
                    m.d.comb += values[k].eq(acc_d[k].as_signed() + x * y)

        # Reductions over the valid lanes, in element order.
        lane_sum = Signal(32)
        m.d.comb += lane_sum.eq(sum(Mux(lane_valid[k], xs[k], 0) for k in range(lanes)))
        best, best_lane = xs[0], Const(0, 16)
        for k in range(1, lanes):   # a chain of signals, not of shared expressions
            better = lane_valid[k] & (xs[k] > best)
            best_k, lane_k = Signal(signed(32), name=f"best{k}"), Signal(16, name=f"best_lane{k}")
            m.d.comb += [best_k.eq(Mux(better, xs[k], best)), lane_k.eq(Mux(better, k, best_lane))]
            best, best_lane = best_k, lane_k
        reducing = sel_is(Op.VSUM, Op.VRMAX, Op.VARGMAX)
        new_result = Signal(32)
        new_index = Signal(16)
        improves = best > sel.result.as_signed()
        m.d.comb += [
            new_result.eq(Mux(sel_is(Op.VSUM), sel.result + lane_sum,
                              Mux(improves, best, sel.result))),
            new_index.eq(Mux(improves, sel.position + best_lane, sel.result_index)),
        ]

        # Where the beat's results go.
        beat_writes_mem = Signal()
        beat_writes_acc = Signal()
        beat_sends = Signal()
        m.d.comb += [
            beat_writes_mem.eq(beat & ~reducing & sel.dst.is_(Kind.MEM)),
            beat_writes_acc.eq(beat & ~reducing & sel.dst.is_(Kind.ACC)),
            beat_sends.eq(beat & ~reducing & sel.dst.is_(Kind.FOUT)),
        ]
        reads_src2 = sel_is(Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN, Op.VMAC) & ~scalar_flag
        increments[Counter.SRAM_READS] += [
            Mux(beat & sel.src.is_(Kind.MEM), count, 0),
            Mux(beat & reads_src2 & sel.src2.is_(Kind.MEM), count, 0),
            Mux(beat & uses_table, 4, 0),
        ]
        increments[Counter.SRAM_WRITES].append(Mux(beat_writes_mem, count, 0))

        # --- the slots: launch, stage, beat, finish ---
        launch = Signal()                     # set by the scalar unit below
        launch_slot = Signal(range(SLOTS))
        launch_state = Slot(p, "_launch")     # what a launch writes
        launch_activates = Signal()
        reduction_done = Signal()
        reduction_rd = Signal(4)
        reduction_value = Signal(32)
        for n, slot in enumerate(slots):
            here = beat & (beat_slot == n)
            popped_here = pop_by_slot & (pop_slot == n)
            last_beat = here & (sel.position + count == sel.elements)
            keep = Signal(name=f"slot{n}_keep")     # the popped value is staged
            m.d.comb += keep.eq(popped_here & ~(slot.fin_is_scalar & (popped == 0)))
            consume = Signal(name=f"slot{n}_consume")
            m.d.comb += consume.eq(here & slot.has_fin & (~slot.fin_is_scalar | last_beat))
            staged_next = Signal(range(3), name=f"slot{n}_staged_next")
            m.d.comb += staged_next.eq(slot.staged + keep - consume)
            popped_next = slot.fin_popped + popped_here
            finishing = Signal(name=f"slot{n}_finishing")
            m.d.comb += finishing.eq(slot.active & Mux(
                slot.fin_is_scalar, (popped_next == slot.fin_length) & (staged_next == 0),
                last_beat))

            increments[Counter.ZERO_SKIPS].append(popped_here & ~keep)
            with m.If(popped_here):
                m.d.sync += [slot.fin_popped.eq(popped_next),
                             slot.fin_offset.eq(slot.fin_offset + slot.chunk_step)]
            m.d.sync += slot.staged.eq(staged_next)
            # The staging buffer: entry 0 is the head.
            with m.If(consume):
                m.d.sync += [slot.staged_value[0].eq(slot.staged_value[1]),
                             slot.staged_offset[0].eq(slot.staged_offset[1])]
            with m.If(keep):
                target = Mux(slot.staged - consume == 0, 0, 1)
                with m.If(target == 0):
                    m.d.sync += [slot.staged_value[0].eq(popped),
                                 slot.staged_offset[0].eq(slot.fin_offset)]
                with m.Else():
                    m.d.sync += [slot.staged_value[1].eq(popped),
                                 slot.staged_offset[1].eq(slot.fin_offset)]
            with m.If(here):
                chunk_done = sel.position + count == sel.elements
                m.d.sync += slot.position.eq(Mux(chunk_done, 0, sel.position + count))
                for cursor, descriptor in zip(slot.cursors, (slot.dst, slot.src, slot.src2)):
                    step = Mux(slot.parallel, count, descriptor.step())
                    restart = chunk_done & slot.fin_is_scalar & (cursor is not slot.cursors[2])
                    m.d.sync += cursor.eq(Mux(restart, 0, cursor + step))
                m.d.sync += [slot.result.eq(new_result), slot.result_index.eq(new_index)]
            with m.If(finishing):
                m.d.sync += slot.active.eq(0)
                with m.If(reducing & here):    # a reduction finishes on its last beat
                    m.d.comb += [reduction_done.eq(1), reduction_rd.eq(slot.rd),
                                 reduction_value.eq(Mux(op == Op.VARGMAX, new_index,
                                                        new_result))]
            with m.If(launch & (launch_slot == n)):
                m.d.sync += [mine.eq(theirs) for mine, theirs
                             in zip(slot.registers(), launch_state.registers())]
                m.d.sync += slot.active.eq(launch_activates)

        # --- the scalar unit ---
        stall = Signal()
        fault_now = Signal()
        cause = Signal(3)
        next_pc = Signal(16)
        m.d.comb += next_pc.eq(pc + 1)
        reg_we = Signal()
        reg_value = Signal(32)
        send = Signal()
        send_value = Signal(32)
        send_color = Signal(p.color_bits)
        send_ctrl = Signal()

        def raise_fault(why):
            m.d.comb += [fault_now.eq(1), cause.eq(why)]

        def write_rd(value):
            m.d.comb += [reg_we.eq(1), reg_value.eq(value)]

        address = Signal(32)
        m.d.comb += address.eq(rb + imm_s)
        size = Mux(is_op(Op.LD, Op.ST), 4, 1)
        load = sram.read_window(address[:16], "load")
        load_word = Cat(*load[:4])
        in_data = (address + size) <= p.data_bytes

        with m.If(issue & ~fetch_ok):
            raise_fault(Fault.PC_RANGE)
        with m.Elif(issue & ~known):
            raise_fault(Fault.ILLEGAL)
        with m.Elif(decoded):
            with m.Switch(opcode):
                alu = {Op.ADD: rb + rc, Op.SUB: rb - rc, Op.AND: rb & rc, Op.OR: rb | rc,
                       Op.XOR: rb ^ rc, Op.SLL: rb << rc[:5], Op.SRL: rb >> rc[:5],
                       Op.SRA: rb.as_signed() >> rc[:5], Op.MUL: rb * rc,
                       Op.SLT: rb.as_signed() < rc.as_signed(), Op.SLTU: rb < rc,
                       Op.ADDI: rb + imm_s, Op.ANDI: rb & imm_s.as_unsigned(),
                       Op.SLLI: rb << imm[:5], Op.SRLI: rb >> imm[:5],
                       Op.SRAI: rb.as_signed() >> imm[:5], Op.SLTI: rb.as_signed() < imm_s,
                       Op.LUI: Cat(imm, c) << 14}
                for alu_op, value in alu.items():
                    with m.Case(alu_op):
                        write_rd(value)
                with m.Case(Op.LD, Op.LDB):
                    with m.If(~in_data):
                        raise_fault(Fault.MEM_RANGE)
                    with m.Else():
                        write_rd(Mux(opcode == Op.LD, load_word, load[0].as_signed()))
                with m.Case(Op.ST, Op.STB):
                    with m.If(beat_writes_mem):
                        m.d.comb += stall.eq(1)
                    with m.Elif(~in_data):
                        raise_fault(Fault.MEM_RANGE)
                with m.Case(Op.BEQ, Op.BNE, Op.BLT, Op.BGE):
                    less = rb.as_signed() < rc.as_signed()
                    taken = (is_op(Op.BEQ) & (rb == rc) | is_op(Op.BNE) & (rb != rc)
                             | is_op(Op.BLT) & less | is_op(Op.BGE) & ~less)
                    with m.If(taken):
                        m.d.comb += next_pc.eq(pc + imm_s)
                with m.Case(Op.BDEC):
                    decremented = (ra - 1)[:32]
                    m.d.comb += [reg_we.eq(1), reg_value.eq(decremented)]
                    with m.If(decremented != 0):
                        m.d.comb += next_pc.eq(pc + imm_s)
                with m.Case(Op.JAL):
                    write_rd(pc + 1)
                    m.d.comb += next_pc.eq(imm)
                with m.Case(Op.JR):
                    m.d.comb += next_pc.eq(rb)
                with m.Case(Op.CSRR):
                    with m.If(imm >= COUNTERS):
                        raise_fault(Fault.ILLEGAL)
                    with m.Else():
                        write_rd(Array(counters)[imm[:(COUNTERS - 1).bit_length()]])
                with m.Case(Op.RECV):
                    with m.If(imm >= p.colors):
                        raise_fault(Fault.COLOR)
                    with m.Elif(~pop_by_recv):
                        m.d.comb += stall.eq(1)
                    with m.Else():
                        write_rd(popped)
                with m.Case(Op.SEND):
                    ctrl_bit = SEND_CTRL.bit_length() - 1
                    with m.If(imm[:ctrl_bit] >= p.colors):
                        raise_fault(Fault.COLOR)
                    with m.Elif(beat_sends | (credits[imm[:p.color_bits]] == 0)):
                        m.d.comb += stall.eq(1)
                    with m.Else():
                        m.d.comb += [send.eq(1), send_value.eq(rc),
                                     send_color.eq(imm[:p.color_bits]), send_ctrl.eq(imm[ctrl_bit])]
                with m.Case(Op.TASK, Op.TBIND, Op.TACT, Op.TBLOCK, Op.TUNBLOCK):
                    with m.If(a >= TASKS):
                        raise_fault(Fault.ILLEGAL)
                    with m.Elif(is_op(Op.TBIND) & (imm >= p.colors)):
                        raise_fault(Fault.COLOR)
                with m.Case(Op.WAIT):
                    with m.If(a >= SLOTS):
                        raise_fault(Fault.ILLEGAL)
                    with m.Elif(Array(s.active for s in slots)[a[:1]]):
                        m.d.comb += stall.eq(1)
                with m.Case(Op.DMEM, Op.DACC, Op.DFIN, Op.DFOUT):
                    with m.If(a >= DESCRIPTORS):
                        raise_fault(Fault.ILLEGAL)
                with m.Case(*[o for o in Op if OPS[o].format in (Format.V, Format.VRED)]):
                    slot_number = imm[VFlag.SLOT1.bit_length() - 1]
                    with m.If(Array(s.active for s in slots)[slot_number]):
                        m.d.comb += stall.eq(1)
                    with m.Else():
                        launch_cause = self._launch(m, p, opcode, a, b, c, imm, regs, dsr,
                                                    launch_state, launch_activates)
                        with m.If(launch_cause != Fault.NONE):
                            raise_fault(launch_cause)
                        with m.Else():
                            m.d.comb += [launch.eq(1), launch_slot.eq(slot_number)]

        completed = Signal()
        m.d.comb += completed.eq(decoded & ~stall & ~fault_now)
        increments[Counter.BUSY].append(completed | beat)
        increments[Counter.CYCLES].append(run & ~halted)
        increments[Counter.FAULTS].append(fault_now)
        increments[Counter.SRAM_READS].append(Mux(completed & is_op(Op.LD, Op.LDB), size, 0))
        increments[Counter.SRAM_WRITES].append(Mux(completed & is_op(Op.ST, Op.STB), size, 0))
        increments[Counter.ZERO_SKIPS].append(launch & ~launch_activates)

        with m.If(issue & ~stall):
            m.d.sync += waiting.eq(0)
        with m.If(fault_now):
            m.d.sync += [fault.eq(cause), fault_pc.eq(pc), halted.eq(1)]
        with m.If(completed):
            m.d.sync += pc.eq(next_pc)
            with m.Switch(opcode):
                with m.Case(Op.TASK):
                    m.d.sync += task_entry[a[:3]].eq(imm)
                with m.Case(Op.TBIND):
                    m.d.sync += [task_bound[a[:3]].eq(1), task_color[a[:3]].eq(imm)]
                with m.Case(Op.TACT):
                    m.d.sync += task_active[a[:3]].eq(1)
                with m.Case(Op.TBLOCK, Op.TUNBLOCK):
                    m.d.sync += task_blocked[a[:3]].eq(opcode == Op.TBLOCK)
                with m.Case(Op.TEXIT):
                    m.d.sync += running.eq(0)
                with m.Case(Op.HALT):
                    m.d.sync += halted.eq(1)
                with m.Case(Op.DMEM, Op.DACC, Op.DFIN, Op.DFOUT):
                    kind = Mux(opcode == Op.DMEM, Kind.MEM, Mux(opcode == Op.DACC, Kind.ACC,
                                                              Mux(opcode == Op.DFIN, Kind.FIN,
                                                                  Kind.FOUT)))
                    for n, d in enumerate(dsr):
                        with m.If(a == n):
                            m.d.sync += [
                                d.kind.eq(kind),
                                d.base.eq(Mux(is_op(Op.DFIN, Op.DFOUT), 0, rb[:16])),
                                d.length.eq(rc[:16]),
                                d.stride.eq(Mux(opcode == Op.DACC, 0, imm_s[:16])),
                            ]
            # Synchronous operations (and every reduction) make the core wait for their slot.
            with m.If(launch & (~imm[VFlag.ASYNC.bit_length() - 1] | fmt(Format.VRED))):
                m.d.sync += [waiting.eq(1), waiting_slot.eq(launch_slot)]

        # The scheduler: the core is free after TEXIT.
        schedule = run & ~halted & ~running
        with m.If(schedule):
            for t in reversed(range(TASKS)):
                startable = ~task_blocked[t] & (task_active[t] | task_bound[t]
                                                & queue_nonempty.bit_select(task_color[t], 1))
                with m.If(startable):
                    for other in range(TASKS):
                        m.d.sync += task_active[other].eq(Mux(other == t, 0, task_active[other]))
                    m.d.sync += [pc.eq(task_entry[t]), running.eq(1)]

        # Register writes: a finishing reduction, or the instruction that completes.
        with m.If(reduction_done):
            m.d.sync += regs[reduction_rd].eq(reduction_value)
        with m.Elif(completed & reg_we):
            m.d.sync += regs[a].eq(reg_value)
        m.d.sync += regs[0].eq(0)

        # SRAM writes: the back door, a beat, or a store.
        with m.If(bd.mem_we):
            m.d.comb += [sram_w_rows.eq(1), sram_w_first.eq(bd.mem_row),
                         sram_w_lanes.eq(bd.mem_wdata), sram_w_mask.eq(-1)]
        with m.Elif(beat_writes_mem):
            m.d.comb += [sram_w_first.eq(dst_first),
                         sram_w_lanes.eq(Cat(v[:8] for v in values)), sram_w_mask.eq(lane_valid)]
        with m.Elif(completed & is_op(Op.ST, Op.STB)):
            m.d.comb += [sram_w_first.eq(address[:16]), sram_w_lanes.eq(rc),
                         sram_w_mask.eq(Mux(opcode == Op.ST, 0b1111, 0b1))]
        with m.Elif(loader_sram.valid):
            m.d.comb += [sram_w_first.eq(loader_sram.address), sram_w_lanes.eq(loader_sram.byte),
                         sram_w_mask.eq(1)]
        with m.If(bd.acc_we):
            m.d.comb += [acc_w_rows.eq(1), acc_w_first.eq(bd.acc_row),
                         acc_w_lanes.eq(bd.acc_wdata), acc_w_mask.eq(-1)]
        with m.Elif(beat_writes_acc):
            m.d.comb += [acc_w_first.eq(dst_first), acc_w_lanes.eq(Cat(values)),
                         acc_w_mask.eq(lane_valid)]

        # Wavelets to the router: from a beat or from SEND.
        out = self.to_router
        m.d.comb += [
            out.valid.eq(beat_sends | send & completed),
            out.wavelet.data.eq(Mux(beat_sends, values[0], send_value)),
            out.wavelet.color.eq(Mux(beat_sends, sel.dst.color, send_color)),
            out.wavelet.ctrl.eq(~beat_sends & send_ctrl),
        ]
        increments[Counter.WAVELETS_OUT].append(out.valid)
        for color in range(p.colors):
            spent = out.valid & (out.wavelet.color == color)
            returned = out.credit & (out.credit_color == color)
            m.d.sync += credits[color].eq(credits[color] + returned - spent)

        # Counters.
        for counter, adds in increments.items():
            if adds:
                m.d.sync += counters[counter].eq(counters[counter] + sum(adds))
        return m

    def _loader(self, m, queue_nonempty, queue_head, pop, code_write, increments):
        """The front door: while the core is disabled, it takes the wavelets of the load
        color and writes the memories as they say (:class:`rtl.wavelet.LoaderTag`).
        Returns the data SRAM write it wants (``valid``, ``address``, ``byte``)."""
        p = self._params
        sram_write = wiring.Signature({"valid": Out(1), "address": Out(16),
                                       "byte": Out(8)}).create(path=("loader",))
        if p.xy_colors == 0:               # no XY color, no front door
            return sram_write
        color = load_color(p)
        address = Signal(16, name="loader_address")
        to_code = Signal(name="loader_to_code")
        assembled = Signal(24, name="loader_word")      # code bytes so far, little-endian
        count = Signal(2, name="loader_count")
        taking = ~self.enable & queue_nonempty[color]
        payload = queue_head[:16]
        tag, value = payload[14:], payload[:14]
        with m.If(taking):
            m.d.comb += [pop.valid.eq(1), pop.color.eq(color)]
            with m.Switch(tag):
                with m.Case(LoaderTag.ADDRESS_LOW):
                    m.d.sync += [address[:14].eq(value), count.eq(0)]
                with m.Case(LoaderTag.ADDRESS_HIGH):
                    m.d.sync += [address[14:].eq(value[:2]), to_code.eq(value[13]), count.eq(0)]
                with m.Case(LoaderTag.BYTE):
                    with m.If(~to_code):
                        m.d.comb += [sram_write.valid.eq(1), sram_write.address.eq(address),
                                     sram_write.byte.eq(value[:8])]
                        m.d.sync += address.eq(address + 1)
                    with m.Elif(count == 3):
                        m.d.comb += [code_write.addr.eq(address),
                                     code_write.data.eq(Cat(assembled, value[:8])),
                                     code_write.en.eq(1)]
                        m.d.sync += [address.eq(address + 1), count.eq(0)]
                    with m.Else():
                        m.d.sync += [assembled.eq(Cat(assembled[8:], value[:8])),
                                     count.eq(count + 1)]
        increments[Counter.LOADED].append(taking & (tag == LoaderTag.BYTE))
        return sram_write

    def _input_queues(self, m):
        """One queue per color for the wavelets from the router; one leaves per cycle.

        Returns ``(nonempty, head, pop)``: a bit per color, the data of the head of
        ``pop.color``, and ``pop`` (``valid``, ``color``) for the caller to drive.
        Taking a wavelet returns its credit in the same cycle.
        """
        p = self._params
        colors, depth = p.colors, p.queue_depth
        slot_bits = (depth - 1).bit_length()
        queue = Memory(shape=unsigned(DATA_BITS), depth=colors << slot_bits, init=[])
        m.submodules.ramp_queue = queue
        count = Packed(colors, depth.bit_length(), "ramp_count")
        head = Packed(colors, max(1, slot_bits), "ramp_head")
        tail = Packed(colors, max(1, slot_bits), "ramp_tail")

        def address(slot, color):
            return Cat(slot[:slot_bits], color) if slot_bits else color

        def advance(slot):
            return Mux(slot == depth - 1, 0, slot + 1)

        nonempty = Signal(colors, name="ramp_nonempty")
        m.d.comb += nonempty.eq(Cat(count[c] != 0 for c in range(colors)))
        pop = wiring.Signature({"valid": Out(1), "color": Out(p.color_bits)}).create(
            path=("ramp_pop",))
        read = queue.read_port(domain="comb")
        m.d.comb += read.addr.eq(address(head[pop.color], pop.color))

        link = self.from_router
        arriving = link.wavelet.color
        same = pop.valid & (pop.color == arriving)
        # A sender that respects its credits never finds the queue full.
        accepted = link.valid & ((count[arriving] != depth) | same)
        write = queue.write_port()
        m.d.comb += [write.addr.eq(address(tail[arriving], arriving)),
                     write.data.eq(link.wavelet.data), write.en.eq(accepted),
                     link.credit.eq(pop.valid), link.credit_color.eq(pop.color)]
        with m.If(accepted):
            m.d.sync += tail[arriving].eq(advance(tail[arriving]))
        with m.If(pop.valid):
            m.d.sync += head[pop.color].eq(advance(head[pop.color]))
        with m.If(accepted & ~same):
            m.d.sync += count[arriving].eq(count[arriving] + 1)
        with m.If(pop.valid & ~(accepted & same)):
            m.d.sync += count[pop.color].eq(count[pop.color] - 1)
        return nonempty, read.data, pop

    def _launch(self, m, p, opcode, a, b, c, imm, regs, dsr, state, activates):
        """Check a vector instruction's operands as :meth:`sim.iss.Core._launch` does; drive
        ``state`` (the slot registers it starts with) and return the fault cause."""
        def is_op(*ops):
            return Cat(opcode == o for o in ops).any()

        reduction = is_op(Op.VSUM, Op.VRMAX, Op.VARGMAX)
        scalar = imm[VFlag.SCALAR.bit_length() - 1]
        uses_c = ~is_op(Op.VMOV, Op.VQNT) & ~reduction
        c_vector = uses_c & ~scalar                  # operand c is a descriptor
        dst, src, src2 = (_pick(m, dsr, index[:3], f"launch_{role}")
                          for index, role in ((a, "dst"), (b, "src"), (c, "src2")))

        def kind_in(d, *kinds):
            return Cat(d.kind == k for k in kinds).any()

        fin_src = src.is_(Kind.FIN)
        fin_src2 = c_vector & src2.is_(Kind.FIN)
        illegal = ((~reduction & (a >= DESCRIPTORS)) | (b >= DESCRIPTORS)
                   | (c_vector & (c >= DESCRIPTORS))
                   | ~kind_in(src, Kind.MEM, Kind.ACC, Kind.FIN)
                   | (c_vector & ~kind_in(src2, Kind.MEM, Kind.ACC, Kind.FIN))
                   | (~reduction & ~kind_in(dst, Kind.MEM, Kind.ACC, Kind.FOUT))
                   | (fin_src & fin_src2)
                   | (is_op(Op.VMAC, Op.VMACS) & ~dst.is_(Kind.ACC))
                   | (is_op(Op.VTBL) & (scalar | ~src2.is_(Kind.MEM)))
                   | (is_op(Op.VMACS) & (fin_src | ~scalar & ~fin_src2)))
        used = [(dst, ~reduction), (src, Const(1)), (src2, c_vector)]
        bad_color = Cat(use & kind_in(d, Kind.FIN, Kind.FOUT) & (d.color >= p.colors)
                        for d, use in used).any()
        elements = Mux(reduction, src.length, dst.length)
        chunks = Mux(scalar, 1, src2.length)
        elementwise = ~reduction & ~is_op(Op.VMACS, Op.VTBL)
        bad_shape = ((elements == 0)
                     | is_op(Op.VMACS) & ((chunks == 0) | (src.length != chunks * elements))
                     | is_op(Op.VTBL) & ((src.length != elements) | (src2.length < 2))
                     | elementwise & ((src.length != elements)
                                      | c_vector & (src2.length != elements)))
        range_cause = Const(Fault.NONE, 3)
        for d, use in reversed(used):              # the first failing operand wins
            table = is_op(Op.VTBL) & (d is src2)
            last = Signal(signed(34), name=f"launch_last_{d.kind.name}")
            m.d.comb += last.eq(Mux(table, d.base + 2 * d.length - 1,
                                    d.base + (d.length - 1) * d.stride.as_signed()))
            mem_bad = (d.base >= p.data_bytes) | (last < 0) | (last >= p.data_bytes)
            acc_bad = d.base + d.length > p.acc_words
            range_cause = Mux(use & d.is_(Kind.MEM) & mem_bad, Fault.MEM_RANGE,
                              Mux(use & d.is_(Kind.ACC) & acc_bad, Fault.ACC_RANGE, range_cause))
        cause = Signal(3, name="launch_cause")
        m.d.comb += cause.eq(Mux(illegal, Fault.ILLEGAL, Mux(bad_color, Fault.COLOR,
                                                              Mux(bad_shape, Fault.SHAPE,
                                                                  range_cause))))

        vector_src2 = c_vector & ~is_op(Op.VTBL, Op.VMACS)
        flat = [(d, use) for d, use in ((dst, ~reduction), (src, Const(1)), (src2, vector_src2))]
        parallel = ~is_op(Op.VTBL) & Cat(
            ~use | d.is_(Kind.ACC) | d.is_(Kind.MEM) & (d.stride == 1) for d, use in flat).all()
        rc = regs[c]
        m.d.comb += [
            state.op.eq(opcode), state.flags.eq(imm),
            *state.dst.eq(dst), *state.src.eq(src), *state.src2.eq(src2),
            state.scalar.eq(rc), state.parallel.eq(parallel), state.rd.eq(a),
            state.elements.eq(elements),
            state.has_fin.eq(fin_src | fin_src2),
            state.fin_is_scalar.eq(is_op(Op.VMACS) & ~scalar),
            state.fin_color.eq(Mux(fin_src, src.color, src2.color)),
            state.fin_length.eq(Mux(fin_src, src.length, src2.length)),
            state.chunk_step.eq(elements * src.step()),
            state.result.eq(Mux(is_op(Op.VRMAX, Op.VARGMAX), INT32_MIN, 0)),
            activates.eq(~(is_op(Op.VMACS) & scalar & (rc == 0))),
        ]
        with m.If(reduction):
            m.d.comb += state.dst.kind.eq(Kind.NONE)
        with m.If(~c_vector):
            m.d.comb += state.src2.kind.eq(Kind.NONE)
        return cause
