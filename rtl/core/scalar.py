"""The scalar unit: registers, control flow, tasks, faults, and the issue of vector operations."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa import (COUNTERS, DESCRIPTORS, DTYPE_SHIFT, INSTRUCTION, OPS, REDUCTIONS, REGISTERS,
                   SEND_CTRL, SLOTS, TASKS, Dtype, Fault, Format, Kind, Op, VFlag,
                   descriptor_layout)
from ..wavelet import wavelet_layout
from .slots import (check_launch, extent_layout, extent_of, launch_layout, operands,
                    vmacs_geometry)

__all__ = ["ScalarUnit"]


class ScalarUnit(wiring.Component):
    """One instruction a cycle unless it waits, as :meth:`sim.iss.Core._execute` specifies.

    - ``instruction`` (with ``in_range``, ``known``) is the word at ``pc``, this cycle,
      once ``fetch_ready``; ``next_pc`` is the PC of the next cycle (the fetch reads it).
    - It waits (``completed`` low) for: the slot of a synchronous vector operation;
      ``WAIT``'s slot; a free slot for a vector instruction; ``RECV``'s wavelet
      (``recv_wants``, granted by ``pop_for_recv``); a credit, and no beat sending,
      for ``SEND``; no beat writing SRAM, for ``ST``/``STB``.
    - ``LD``/``LDB`` take two cycles: the first presents ``load_address`` to the SRAM
      (when ``load_port_free``), the second takes ``load_data`` into the register.
      ``MUL`` takes two: the first registers the product.  ``VMACS`` takes one more
      than other vector instructions: its first multiplies out its chunks.
      ``ST``/``STB`` present ``store_address``/``store_data``/``store_word`` in every
      cycle and write when ``store`` (late: it waits on the range check).  ``SEND``
      drives ``send``.
    - ``launch`` starts a checked vector operation in ``launch_slot``.
    - The vector unit's ``reduction_*`` writes a register, before the instruction's own.
    - A fault sets ``fault``/``fault_pc`` and halts the core (``fault_now`` in that
      cycle).  Only the PC register and the fault's own state wait for the late fault
      checks (an address's, a launch's); ``next_pc`` follows the instruction unless it
      waits, and register, task and descriptor writes belong to instructions whose
      faults are known early.  After ``TEXIT`` the scheduler starts the lowest-numbered
      startable task.
    - ``quiet``: nothing here changes this cycle, whatever the fabric does: the core is
      disabled or halted, free with no task to start, or it waits for what only the
      fabric or a slot can end (a synchronous operation's slot, ``WAIT``'s, a busy slot
      for a vector instruction, ``RECV``'s wavelet, ``SEND``'s credit).
    - Reset: ``pc`` 0, the main program running, every register and descriptor zero.
    """

    def __init__(self, params):
        self._params = params
        p = params
        super().__init__({
            "run": In(1),
            "instruction": In(INSTRUCTION),
            "in_range": In(1),
            "known": In(1),
            "fetch_ready": In(1),
            "pc": Out(16),
            "next_pc": Out(16),
            "halted": Out(1),
            "quiet": Out(1),
            "fault": Out(3),
            "fault_pc": Out(16),
            "completed": Out(1),
            "fault_now": Out(1),
            "slots_active": In(SLOTS),
            "nonempty": In(p.colors),
            "recv_wants": Out(1),
            "recv_color": Out(p.color_bits),
            "pop_for_recv": In(1),
            "popped": In(32),
            "beat_writes_mem": In(1),
            "beat_sends": In(1),
            "credit_free": In(p.colors),
            "send": Out(1),
            "send_wavelet": Out(wavelet_layout(p)),
            "load_address": Out(16),
            "load_port_free": In(1),
            "load_data": In(32),
            "load_bytes": Out(range(5)),       # SRAM bytes this instruction reads
            "store": Out(1),
            "store_address": Out(16),
            "store_data": Out(32),
            "store_bytes": Out(range(5)),
            "store_word": Out(1),              # the instruction is ST, not STB
            "launch": Out(1),
            "launch_slot": Out(range(SLOTS)),
            "launch_state": Out(launch_layout(p)),
            "launch_activates": Out(1),
            "reduction_done": In(1),
            "reduction_rd": In(4),
            "reduction_value": In(32),
            "counters": In(32).array(COUNTERS),
            "reg": In(4),                      # the back door's register read
            "reg_rdata": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        self._regs = regs = Array(Signal(32, name=f"r{n}") for n in range(REGISTERS))
        self._dsr = [Signal(descriptor_layout(p), name=f"d{n}") for n in range(DESCRIPTORS)]
        self._extents = [Signal(extent_layout(), name=f"d{n}_extent") for n in range(DESCRIPTORS)]
        self._running = Signal(init=1)
        self._loading = Signal()         # LD's second cycle: the data is on the port
        shapes = {"entry": 16, "bound": 1, "color": p.color_bits, "active": 1, "blocked": 1}
        self._tasks = {name: Array(Signal(shape, name=f"task{t}_{name}") for t in range(TASKS))
                       for name, shape in shapes.items()}
        self._slot_busy = Signal()       # a vector instruction waits for its slot
        waiting = Signal()
        waiting_slot = Signal(range(SLOTS))
        held = Signal()                  # by a synchronous operation's slot
        m.d.comb += [self.reg_rdata.eq(regs[self.reg]),
                     held.eq(waiting & self.slots_active.bit_select(waiting_slot, 1))]

        inst = self.instruction
        issue = Signal()
        m.d.comb += issue.eq(self.run & self.fetch_ready & ~self.halted & self._running & ~held)
        decoded = Signal()       # the fetched word is an instruction of the ISA
        m.d.comb += [decoded.eq(issue & self.in_range & self.known),
                     self.recv_wants.eq(decoded & (inst.opcode == Op.RECV) & (inst.imm < p.colors)
                                        & self.nonempty.bit_select(inst.imm[:p.color_bits], 1)),
                     self.recv_color.eq(inst.imm)]

        stall, cause, early_fault, successor, reg_we, reg_value = self._execute(m, issue,
                                                                                decoded)
        m.d.comb += self.completed.eq(decoded & ~stall & ~self.fault_now)
        completed = self.completed
        is_load = Cat(inst.opcode == op for op in (Op.LD, Op.LDB)).any()
        is_store = Cat(inst.opcode == op for op in (Op.ST, Op.STB)).any()
        size = Mux((inst.opcode == Op.LD) | (inst.opcode == Op.ST), 4, 1)
        # An LD completes in its second cycle, which neither waits nor faults.
        m.d.comb += [self.load_bytes.eq(Mux(decoded & is_load & self._loading, size, 0)),
                     self.store.eq(completed & is_store),
                     self.store_bytes.eq(Mux(self.store, size, 0)),
                     self.store_word.eq(inst.opcode == Op.ST)]

        with m.If(issue & ~stall):
            m.d.sync += waiting.eq(0)
        with m.If(self.fault_now):
            m.d.sync += [self.fault.eq(cause), self.fault_pc.eq(self.pc), self.halted.eq(1)]
        # The fetch follows the instruction unless it waits, faulting or not: a fault halts
        # the core, and the PC register keeps the faulting instruction's.
        m.d.comb += self.next_pc.eq(self.pc)
        with m.If(decoded & ~stall):
            m.d.comb += self.next_pc.eq(successor)
        m.d.sync += self.pc.eq(Mux(self.fault_now, self.pc, self.next_pc))
        # What _commit writes belongs to instructions whose faults are all early.
        with m.If(decoded & ~stall & ~early_fault):
            self._commit(m)
            # Synchronous operations (and every reduction) make the core wait for their slot.
            reduction = Cat(inst.opcode == op for op in REDUCTIONS).any()
            with m.If(self.launch & (~inst.imm[VFlag.ASYNC.bit_length() - 1] | reduction)):
                m.d.sync += [waiting.eq(1), waiting_slot.eq(self.launch_slot)]
        any_startable = self._schedule(m)
        # The waits fault only early (a color's or a slot's number), so their test stays
        # clear of the address checks, the deepest logic here.
        waits = self._slot_busy | Cat(inst.opcode == op
                                      for op in (Op.RECV, Op.SEND, Op.WAIT)).any()
        m.d.comb += self.quiet.eq(~self.run | self.halted | ~self._running & ~any_startable
                                  | self._running & self.fetch_ready
                                  & (held | decoded & stall & ~early_fault & waits))

        # Register writes: a finishing reduction, or the instruction that completes.
        with m.If(self.reduction_done):
            m.d.sync += regs[self.reduction_rd].eq(self.reduction_value)
        # No instruction that writes a register faults once it does not wait (a CSRR of an
        # unknown counter does not write): the write need not wait for the fault checks.
        with m.Elif(decoded & ~stall & reg_we):
            m.d.sync += regs[inst.a].eq(reg_value)
        m.d.sync += regs[0].eq(0)
        return m

    def _execute(self, m, issue, decoded):
        """What the instruction does this cycle; returns ``(stall, cause, successor, reg_we,
        reg_value)`` (successor: the PC after it) and drives the fault, send, load, store
        and launch outputs."""
        p, regs = self._params, self._regs
        inst, pc = self.instruction, self.pc
        opcode, a, b, c, imm = inst.opcode, inst.a, inst.b, inst.c, inst.imm
        imm_s = Signal(signed(32))       # the immediate, sign-extended
        m.d.comb += imm_s.eq(imm.as_signed())
        ra, rb, rc = regs[a], regs[b], regs[c]
        stall, cause, reg_we, early_fault = Signal(), Signal(3), Signal(), Signal()
        successor, reg_value = Signal(16), Signal(32)
        m.d.comb += successor.eq(pc + 1)

        def raise_fault(why, late=False):
            """``late``: after an address's or a launch's checks, which only ``LD``/``ST``
            and vector instructions make; the others are known early."""
            m.d.comb += [self.fault_now.eq(1), cause.eq(why)]
            if not late:
                m.d.comb += early_fault.eq(1)

        def write_rd(value):
            m.d.comb += [reg_we.eq(1), reg_value.eq(value)]

        loading = self._loading
        multiplying = Signal()           # MUL's second cycle: the product is registered
        product = Signal(32)
        # The address rb + imm, 32-bit (ADDI's sum too), is in the data SRAM when its low
        # half is and its high half is zero.  The high half is rb's plus the immediate's sign
        # and the carry into bit 16, so it needs comparisons of rb, not a second addition.
        address = Signal(32)
        m.d.comb += address.eq(rb + imm_s)
        low = address[:16]
        m.d.comb += [self.load_address.eq(low), self.store_address.eq(low),
                     self.store_data.eq(rc)]
        high, carry = rb[16:], address[16] ^ rb[16] ^ imm_s[16]
        high_zero = Mux(imm_s < 0, Mux(carry, high == 0, high == 1),
                        Mux(carry, high == 0xFFFF, high == 0))
        size = Mux((opcode == Op.LD) | (opcode == Op.ST), 4, 1)
        # low <= data_bytes - size, without waiting for low: over the low halves, t = rb + imm
        # - (data_bytes - size + 1), summed carry-save, is low - limit - 1 + carry * 2^16.
        limit = Mux(size == 4, -(p.data_bytes - 3) % (1 << 19), -p.data_bytes % (1 << 19))
        t = _three_sum(rb[:16], imm_s[:16], limit, 19)
        in_data = high_zero & (t[18] | carry & ~t[17] & ~t[16])
        ctrl_bit = SEND_CTRL.bit_length() - 1
        m.d.comb += [self.send_wavelet.data.eq(rc), self.send_wavelet.color.eq(imm[:p.color_bits]),
                     self.send_wavelet.ctrl.eq(imm[ctrl_bit])]

        with m.If(issue & ~self.in_range):
            raise_fault(Fault.PC_RANGE)
        with m.Elif(issue & ~self.known):
            raise_fault(Fault.ILLEGAL)
        with m.Elif(decoded):
            with m.Switch(opcode):
                alu = {Op.ADD: rb + rc, Op.SUB: rb - rc, Op.AND: rb & rc, Op.OR: rb | rc,
                       Op.XOR: rb ^ rc, Op.SLL: rb << rc[:5], Op.SRL: rb >> rc[:5],
                       Op.SRA: rb.as_signed() >> rc[:5],
                       Op.SLT: rb.as_signed() < rc.as_signed(), Op.SLTU: rb < rc,
                       Op.ADDI: address, Op.ANDI: rb & imm_s.as_unsigned(),
                       Op.SLLI: rb << imm[:5], Op.SRLI: rb >> imm[:5],
                       Op.SRAI: rb.as_signed() >> imm[:5], Op.SLTI: rb.as_signed() < imm_s,
                       Op.LUI: Cat(imm, c) << 14}
                for alu_op, value in alu.items():
                    with m.Case(alu_op):
                        write_rd(value)
                with m.Case(Op.MUL):
                    m.d.comb += stall.eq(~multiplying)
                    with m.If(~multiplying):          # the first cycle multiplies
                        m.d.sync += [multiplying.eq(1), product.eq(rb * rc)]
                    with m.Else():
                        m.d.sync += multiplying.eq(0)
                        write_rd(product)
                with m.Case(Op.LD, Op.LDB):
                    m.d.comb += stall.eq(~loading)
                    with m.If(~in_data & ~loading):   # checked in the first cycle
                        raise_fault(Fault.MEM_RANGE, late=True)
                    with m.Elif(~loading):        # the first cycle addresses the SRAM
                        m.d.sync += loading.eq(self.load_port_free)
                    with m.Else():
                        m.d.sync += loading.eq(0)
                    # The register's value is ready beside the checks, not after them: a
                    # fault keeps the instruction from completing, and so from writing.
                    with m.If(loading):
                        write_rd(Mux(opcode == Op.LD, self.load_data,
                                     self.load_data[:8].as_signed()))
                with m.Case(Op.ST, Op.STB):
                    m.d.comb += stall.eq(self.beat_writes_mem)
                    with m.If(~self.beat_writes_mem & ~in_data):
                        raise_fault(Fault.MEM_RANGE, late=True)
                with m.Case(Op.BEQ, Op.BNE, Op.BLT, Op.BGE):
                    less = rb.as_signed() < rc.as_signed()
                    taken = ((opcode == Op.BEQ) & (rb == rc) | (opcode == Op.BNE) & (rb != rc)
                             | (opcode == Op.BLT) & less | (opcode == Op.BGE) & ~less)
                    with m.If(taken):
                        m.d.comb += successor.eq(pc + imm_s)
                with m.Case(Op.BDEC):
                    decremented = (ra - 1)[:32]
                    m.d.comb += [reg_we.eq(1), reg_value.eq(decremented)]
                    with m.If(ra != 1):             # the count after it is not zero
                        m.d.comb += successor.eq(pc + imm_s)
                with m.Case(Op.JAL):
                    write_rd(pc + 1)
                    m.d.comb += successor.eq(imm)
                with m.Case(Op.JR):
                    m.d.comb += successor.eq(rb)
                with m.Case(Op.CSRR):
                    with m.If(imm >= COUNTERS):
                        raise_fault(Fault.ILLEGAL)
                    with m.Else():
                        write_rd(Array(self.counters)[imm[:(COUNTERS - 1).bit_length()]])
                with m.Case(Op.RECV):
                    m.d.comb += stall.eq(~self.pop_for_recv)
                    with m.If(imm >= p.colors):
                        raise_fault(Fault.COLOR)
                    write_rd(self.popped)
                with m.Case(Op.SEND):
                    m.d.comb += stall.eq(self.beat_sends
                                         | ~self.credit_free.bit_select(imm[:p.color_bits], 1))
                    with m.If(imm[:ctrl_bit] >= p.colors):
                        raise_fault(Fault.COLOR)
                    with m.Elif(~stall):
                        m.d.comb += self.send.eq(1)
                with m.Case(Op.TASK, Op.TBIND, Op.TACT, Op.TBLOCK, Op.TUNBLOCK):
                    with m.If(a >= TASKS):
                        raise_fault(Fault.ILLEGAL)
                    with m.Elif((opcode == Op.TBIND) & (imm >= p.colors)):
                        raise_fault(Fault.COLOR)
                with m.Case(Op.WAIT):
                    m.d.comb += stall.eq(self.slots_active.bit_select(a[:1], 1))
                    with m.If(a >= SLOTS):
                        raise_fault(Fault.ILLEGAL)
                with m.Case(Op.DMEM, Op.DACC, Op.DFIN, Op.DFOUT):
                    with m.If(a >= DESCRIPTORS):
                        raise_fault(Fault.ILLEGAL)
                with m.Case(*[o for o in Op if OPS[o].format in (Format.V, Format.VRED)]):
                    self._issue_vector(m, stall, raise_fault)
        return stall, cause, early_fault, successor, reg_we, reg_value

    def _issue_vector(self, m, stall, raise_fault):
        """A vector instruction: wait for its slot, then check it and launch it."""
        slot_number = self.instruction.imm[VFlag.SLOT1.bit_length() - 1]
        prepared = Signal()              # VMACS: its chunk geometry is in the registers
        volume, chunk_step = Signal(32), Signal(16)
        # The checks are built outside the conditions below, so that they are a function
        # of the instruction and the registers alone.
        descriptors = operands(m, self._params, self.instruction, self._dsr)
        chunks_volume, chunks_step = vmacs_geometry(descriptors)
        cause, state, activates = check_launch(m, self._params, self.instruction, self._regs,
                                               descriptors, self._extents, volume, chunk_step)
        with m.If((self.instruction.opcode == Op.VMACS) & ~prepared):
            m.d.comb += stall.eq(1)
            m.d.sync += [prepared.eq(1), volume.eq(chunks_volume), chunk_step.eq(chunks_step)]
        with m.Elif(self.slots_active.bit_select(slot_number, 1)):
            m.d.comb += [stall.eq(1), self._slot_busy.eq(1)]
        with m.Else():
            m.d.sync += prepared.eq(0)
            m.d.comb += [self.launch_state.eq(state), self.launch_activates.eq(activates)]
            with m.If(cause != Fault.NONE):
                raise_fault(cause, late=True)
            with m.Else():
                m.d.comb += [self.launch.eq(1), self.launch_slot.eq(slot_number)]

    def _commit(self, m):
        """The state an instruction that completes writes, beside the PC and registers."""
        regs = self._regs
        inst = self.instruction
        opcode, a, imm = inst.opcode, inst.a, inst.imm
        with m.Switch(opcode):
            with m.Case(Op.TASK):
                m.d.sync += self._tasks["entry"][a[:3]].eq(imm)
            with m.Case(Op.TBIND):
                m.d.sync += [self._tasks["bound"][a[:3]].eq(1),
                             self._tasks["color"][a[:3]].eq(imm)]
            with m.Case(Op.TACT):
                m.d.sync += self._tasks["active"][a[:3]].eq(1)
            with m.Case(Op.TBLOCK, Op.TUNBLOCK):
                m.d.sync += self._tasks["blocked"][a[:3]].eq(opcode == Op.TBLOCK)
            with m.Case(Op.TEXIT):
                m.d.sync += self._running.eq(0)
            with m.Case(Op.HALT):
                m.d.sync += self.halted.eq(1)
            with m.Case(Op.DMEM, Op.DACC, Op.DFIN, Op.DFOUT):
                kind = Mux(opcode == Op.DMEM, Kind.MEM, Mux(opcode == Op.DACC, Kind.ACC,
                                                          Mux(opcode == Op.DFIN, Kind.FIN,
                                                              Kind.FOUT)))
                fabric = (opcode == Op.DFIN) | (opcode == Op.DFOUT)
                rb, rc = regs[inst.b], regs[inst.c]
                base, length = Mux(fabric, 0, rb[:16]), rc[:16]
                field = imm[:DTYPE_SHIFT]
                # The extent is a MEM's (or an ACC's, stride 0): a color's sign is not in it.
                signed_stride = Mux(opcode == Op.DACC, 0, field.as_signed())
                stride = Mux(fabric, field, signed_stride)
                dtype = Mux(opcode == Op.DACC, Dtype.INT, imm[DTYPE_SHIFT:])
                extent = extent_of(base, length, signed_stride)
                for n, (d, d_extent) in enumerate(zip(self._dsr, self._extents)):
                    with m.If(a == n):
                        m.d.sync += [d.kind.eq(kind), d.base.eq(base), d.length.eq(length),
                                     d.stride.eq(stride), d.dtype.eq(dtype),
                                     *(getattr(d_extent, name).eq(value)
                                       for name, value in extent.items())]

    def _schedule(self, m):
        """The scheduler: the core is free after TEXIT.  Returns whether a task is startable."""
        tasks = self._tasks
        active, bound, blocked = tasks["active"], tasks["bound"], tasks["blocked"]
        colors, entries = tasks["color"], tasks["entry"]
        startable = [~blocked[t] & (active[t] | bound[t] & self.nonempty.bit_select(colors[t], 1))
                     for t in range(TASKS)]
        # The lowest-numbered startable task, chosen beside the instruction's successor, not
        # after it: one multiplexer on the fetch's path.
        chosen = Signal(range(TASKS))
        for t in reversed(range(TASKS)):
            with m.If(startable[t]):
                m.d.comb += chosen.eq(t)
        with m.If(self.run & ~self.halted & ~self._running & Cat(startable).any()):
            m.d.comb += self.next_pc.eq(entries[chosen])
            m.d.sync += [active[chosen].eq(0), self._running.eq(1)]
        return Cat(startable).any()


def _three_sum(x, y, z, width):
    """``(x + y + z) mod 2**width``, carry-save: one full adder a bit, then one adder."""
    x, y, z = (Cat(v, Const(0, width)).as_unsigned()[:width] for v in (x, y, z))
    carries = (x & y | x & z | y & z)[:width - 1]
    return (x ^ y ^ z) + Cat(Const(0, 1), carries)
