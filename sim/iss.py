"""The instruction-set simulator: the golden model of one tessera core, cycle by cycle.

It is written from the ISA (:mod:`rtl.isa`) in plain Python integers, with no
reference to the RTL's signals, and it is the specification of the core's
timing: the RTL (:mod:`rtl.core`) matches its cycle counts exactly, and the
differential tests check memory, registers, wavelets and counters down to
the bit and the cycle.

**The ramp.**  The core talks to its router over one credit link each way
(:mod:`rtl.wavelet`).  Arriving wavelets wait in one queue per color
(``queue_depth`` each); taking one returns its credit in the same cycle.  At
most one wavelet is taken per cycle.  The core sends at most one wavelet per
cycle and keeps one credit counter per color for the router's ramp queues.

**Memories.**  Code, data SRAM and accumulators are synchronous, as SRAM macros
are: an address presented in one cycle gives its data in the next.  A read is
transparent to the write of the same clock edge: it returns the value written at
the end of the cycle in which it was addressed.  Data SRAM and accumulators are
banked by address modulo ``lanes``, so any ``lanes`` consecutive elements are one
access per bank; each data bank has two read ports (a vector's first operand, or
the back door; its second operand, a table, or ``LD``) and one write port, each
accumulator bank three read ports and one write port.

**A cycle** (:meth:`Core.step`) runs, all from the state at its start:

0. *Fetch.*  The code memory is read at the PC the core will have in the next
   cycle, so the instruction at a PC is there in the cycle the PC is reached,
   after a branch too.  The first cycle after reset only fetches.
1. *Fabric input.*  Each microthread slot whose operation reads a ``FIN``
   operand has a two-entry staging buffer; it wants a wavelet while the
   buffer has room, the operation needs more, and the queue holds one.  The
   two slots take turns (round robin); a ``RECV`` takes a wavelet only when no
   slot does.  For ``VMACS`` the fabric operand is the scalar: a zero is
   counted as a zero-skip and dropped, so it costs no datapath cycle.
2. *Vector beats*, in a pipeline of issue, E1 .. E4 and, for a *long* beat,
   E5 and E6.  A beat is long when its operation is floating point, except
   ``VRMAX`` and ``VARGMAX``, which rank fp32 by :func:`sim.fp.key` on the
   integer lanes' comparators.
   **Issue:** of the active slots that can make progress (an element in the
   buffer when they read the fabric, a credit when they send to it), one
   issues a beat, the slots taking turns.  A beat covers ``lanes`` elements
   (floating point: ``lanes // 2``) when every vector operand is ``ACC`` or a
   ``MEM`` whose stride is its element's size, else one element (and an fp32
   ``VSUM`` always one).  It advances its slot's cursors, takes its staged
   element and, if it sends, a credit; its source operands are read at the
   end of the cycle.  **E1** brings them to the lanes (widening floats to
   fp32); integer beats compute in **E2** and **E3** and accumulate in **E4**;
   long ones multiply in E2 and E3, add in E4 and E5 and round to the
   destination's type in **E6**.  A beat's last stage (E4 or E6) writes its
   results at the end of the cycle or sends them in it, and updates a
   reduction's running result (its last beat writes the register).
   ``VTBL`` reads its two table entries at the end of E2, through the second
   SRAM port, so no beat issues in a cycle in which a ``VTBL`` beat is in E2.
   ``VMAC``/``VMACS`` read their destination at the end of E3.  So a beat's
   sources see the results of beats issued at least four (after a long beat:
   six) cycles before it, and an integer accumulation sees the beat just
   before it.  Two rules keep one write a cycle and the sums exact: a short
   beat does not issue while a long one is in E1 or E2 (it would write first);
   and a float ``VMAC``/``VMACS`` beat does not issue while a beat of its own
   slot at the same position (in the vector, or ``VMACS``'s chunk) is in E1 or
   E2, nor a float ``VSUM`` beat while any beat of its slot is, since their
   sums are written only three cycles after issue.  A slot is active from
   its launch until its last beat has left its last stage.
3. *Scalar instruction.*  One instruction completes per cycle unless it waits:
   ``ST``/``STB`` wait while a beat in its last stage writes SRAM, ``SEND``
   while an issuing beat takes a credit or a beat in its last stage sends,
   ``RECV`` for its wavelet, a vector instruction for its slot, ``WAIT`` for
   the slot to be idle.  ``LD``/``LDB`` take two cycles: the first checks and addresses the SRAM (waiting while an issuing beat
   reads a second SRAM operand or a table is read, which share the read port),
   the second writes the register.  ``MUL`` takes two cycles too: the first
   multiplies, the second writes.  ``VMACS`` spends one cycle before anything
   else multiplying out its chunks.  A vector instruction without ``ASYNC`` (and
   every reduction) makes the core wait for its slot: the next instruction
   executes in the first cycle that starts with the slot idle, so an operation
   of B beats costs B + 5 cycles (long beats: B + 7).  After ``TEXIT`` the core is free: each free
   cycle the scheduler starts the lowest-numbered unblocked task that is
   activated or whose bound color has a wavelet waiting; its first
   instruction runs in the next cycle.
4. Everything is written at the end of the cycle; then the reads addressed in
   the cycle take their values.

A fault (see :class:`rtl.isa.Fault`) sets the fault flag, cause and PC, counts
in ``FAULTS`` and halts the core; microthreads already running finish.

**Integer arithmetic.**  Registers, accumulators and fabric data are 32-bit
and wrap.  int8 ``MEM`` elements are read sign-extended and written as their
low 8 bits.
``VQNT`` computes ``(x + 2**(s-1)) >> s`` (no rounding term when s = 0) in
33 bits and saturates to int8 (int16 with ``WIDE``).  ``VTBL`` reads int16
entries ``T[i]`` (little-endian, at ``base + 2 i``; ``length >= 2``
entries) and for ``x`` computes ``i = x >> s``, ``f = x & (2**s - 1)``:
``T[0]`` when i < 0, ``T[length-1]`` when i >= length - 1, else
``T[i] + (((T[i+1] - T[i]) * f) >> s)``; it reads the 4 bytes of
``T[i0], T[i0+1]`` with ``i0 = min(max(i, 0), length - 2)``.

**Floating-point arithmetic** (with :attr:`rtl.isa.VFlag.FLOAT`, and the
conversions; only on a core with ``float_lanes``, else ``ILLEGAL``).  The
formats, rounding (to nearest, ties to even), subnormals (kept), infinities,
overflow (to infinity) and the one canonical NaN are :mod:`sim.fp`'s.  Every
source element is widened exactly to fp32: fp16 and bf16 ``MEM`` and fabric
elements (a wavelet's low 16 bits), fp32 accumulators, fabric words and
``SCALAR`` registers.  Each lane computes in fp32, rounding once:
``VMOV`` x; ``VADD`` x + y; ``VSUB`` x - y; ``VMUL`` x * y; ``VMAX``,
``VMIN`` IEEE 754-2019 maximum and minimum; ``VMAC``/``VMACS``
``acc + (x * y)``, the product rounded to fp32 first (exact for fp16 and
for bf16 products in fp32's range, so a fused multiply-add there);
``VITOF`` the int32 (or int8) x; ``VDEQ`` (int8 x) * y; ``VFTOI`` x to
int32, to nearest even, saturating, NaN to 0.  A 16-bit destination takes
the fp32 result rounded to its format (:func:`sim.fp.narrow`); an fp16 or
bf16 wavelet carries it in its low 16 bits, the high ones 0.  ``VMACS``
skips a scalar of +0 or -0 (of its type) as it skips an integer 0: the
accumulators are left as they are, whatever the other operand holds.
Reductions run in fp32: ``VSUM`` adds the elements one by one in order to a
sum that starts at -0 (so that an empty or all -0 prefix stays -0), each
addition rounded; ``VRMAX`` and ``VARGMAX`` rank by :func:`sim.fp.key`
(-0 below +0, a NaN above everything) and ``VARGMAX`` gives the first
index of the largest.

**Non-linear functions** (exp, reciprocal, reciprocal square root, SiLU, an
RMSNorm's scale) are not instructions: each is a fixed sequence of the
operations above on fp32 accumulators (integer seeds on the bits, Newton steps,
a range reduction and a polynomial), defined to the bit by
:mod:`sim.float_math` and emitted as tile code by :mod:`host.kernels.float_math`.
"""

import collections
from dataclasses import dataclass, field

from rtl.isa import (COUNTERS, DESCRIPTORS, OPS, REDUCTIONS, REGISTERS, SEND_CTRL, SLOTS,
                     STRIDE_BITS, TASKS, UNARY, Counter, Dtype, Fault, Format, Kind, Op, Role,
                     VFlag, accepts, decode, element_bytes, is_float_op, sign_extend,
                     split_descriptor_imm)

from . import fp

__all__ = ["Core", "Descriptor", "RampSender", "RampReceiver", "run", "wrap32"]

INT32_MIN = -(1 << 31)


def wrap32(value):
    return sign_extend(value, 32)


def saturate(value, bits):
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(value, low), high)


@dataclass(frozen=True)
class Descriptor:
    kind: Kind = Kind.NONE
    base: int = 0
    length: int = 0
    stride: int = 0          # MEM: signed stride; FIN/FOUT: the color
    dtype: Dtype = Dtype.INT

    @property
    def color(self):
        return self.stride

    def address(self, index):
        return self.base + index * sign_extend(self.stride, 16)


@dataclass
class Slot:
    """One vector microthread: the operation it runs and how far it has got."""
    active: bool = False
    op: Op = Op.NOP
    flags: int = 0
    dst: Descriptor = Descriptor()
    src: Descriptor = Descriptor()
    src2: Descriptor = Descriptor()  # the second vector operand, the table, or the FIN scalar
    scalar: int = 0          # the SCALAR register's value at launch
    width: int = 1           # elements per beat
    rd: int = 0              # reductions: the destination register
    elements: int = 0        # elements per vector (VMACS: per chunk)
    chunks: int = 1          # VMACS: scalars, one per chunk
    position: int = 0        # element index within the vector or current chunk
    fin: Descriptor | None = None   # the FIN operand, if any
    fin_is_scalar: bool = False     # VMACS's scalars come from the fabric: zeros are skipped
    fin_popped: int = 0
    staged: collections.deque = field(default_factory=collections.deque)  # (value, chunk)
    done: bool = False       # every element processed (all but fabric-scalar VMACS)
    result: int = 0          # reductions: running sum or maximum
    result_index: int = 0    # VARGMAX: index of the first maximum so far
    floating: bool = False   # a floating-point operation (sim.fp)
    long: bool = False       # its beats write in E6, not E4
    chained: bool = False    # a float accumulation: see _ready


@dataclass
class Beat:
    """One beat between its issue and its execution (:meth:`Core.step`)."""
    slot: Slot
    op: Op
    indices: range           # the elements it covers (within the vector or chunk)
    chunk: int               # VMACS: the scalar's chunk
    fabric: int              # the staged wavelet it takes: a FIN element or VMACS's scalar
    reads_src2_mem: bool = False
    last: bool = False       # the slot's last beat (not for fabric-scalar VMACS)
    long: bool = False       # written in E6 (floating point), not E4
    xs: list | None = None   # operands, read at the end of the issue cycle
    ys: list | None = None
    accs: list | None = None  # VMAC, VMACS: the destination's values, read in E3
    table: list | None = None  # VTBL: the two entries, read in E2


def interpolate(entries, x, shift, length):
    """VTBL's value for ``x`` from the entries ``T[i0], T[i0+1]`` read (module docstring)."""
    index, fraction = x >> shift, x & ((1 << shift) - 1)
    if index < 0:
        return entries[0]
    if index >= length - 1:
        return entries[1]
    return entries[0] + (((entries[1] - entries[0]) * fraction) >> shift)


_FORMATS = {Dtype.FP16: fp.FP16, Dtype.BF16: fp.BF16, Dtype.FP32: fp.FP32}


def _float_type(descriptor):
    """The element type of a floating-point operand: an accumulator's is fp32."""
    return Dtype.FP32 if descriptor.kind == Kind.ACC else descriptor.dtype


def _widen(dtype, raw):
    """A floating-point element of ``dtype`` (its raw bits) as fp32."""
    return fp.widen(_FORMATS[dtype], raw & ((1 << _FORMATS[dtype].bits) - 1))


def _is_zero(dtype, value):
    """A scalar that VMACS skips: an integer 0, or a float +0 or -0."""
    bits = 16 if dtype in (Dtype.FP16, Dtype.BF16) else 32
    sign = 0 if dtype == Dtype.INT else 1 << (bits - 1)
    return value & ((1 << bits) - 1) & ~sign == 0


class CoreFault(Exception):
    def __init__(self, cause):
        self.cause = cause


class Core:
    """One core.  :meth:`load` the program, then :meth:`step` once per cycle."""

    def __init__(self, params):
        self.params = params
        self.lanes = params.lanes
        self.code = [0] * params.code_words
        self.mem = bytearray(params.data_bytes)
        self.reset()

    def reset(self):
        """The state after reset.  Memories (code, data, accumulators) are kept, as in the RTL."""
        p = self.params
        if not hasattr(self, "acc"):
            self.acc = [0] * p.acc_words
        self.regs = [0] * REGISTERS
        self.dsr = [Descriptor() for _ in range(DESCRIPTORS)]
        self.pc = 0
        self.running = True          # a task (at reset: the main program) is running
        self.halted = False
        self.fault = Fault.NONE
        self.fault_pc = 0
        self.waiting_slot = None     # a synchronous vector instruction's slot
        self.task_entry = [0] * TASKS
        self.task_color = [None] * TASKS
        self.task_active = [False] * TASKS
        self.task_blocked = [False] * TASKS
        self.queues = [collections.deque() for _ in range(p.colors)]
        self.credits = [p.queue_depth] * p.colors
        self.slots = [Slot() for _ in range(SLOTS)]
        self.pop_turn = 0            # the slot that wins the next contested pop
        self.beat_turn = 0           # the slot that wins the next contested beat
        self.counters = [0] * COUNTERS
        self.cycle = 0
        self.fetched = False         # the first cycle after reset only fetches
        self.pipeline = [None] * 6   # the Beats in E1 .. E6 (issued 1 .. 6 cycles ago)
        self.preparing = False       # VMACS: its first cycle is done
        self.loading = None          # LD/LDB: (address, size, value once read)
        self.product = None          # MUL: the product, after its first cycle

    def load(self, code=(), data=None, acc=None):
        """Write code words (from address 0) and a data image, as the back door does."""
        code = list(code)
        self.code[:len(code)] = code
        if data is not None:
            self.mem[:len(data)] = bytes(data)
        if acc is not None:
            self.acc[:len(acc)] = [wrap32(v) for v in acc]

    @property
    def idle(self):
        """Halted with every microthread finished: nothing will change any more."""
        return self.halted and not any(slot.active for slot in self.slots)

    # --- one cycle ---

    def step(self, arriving=None, credit=None):
        """Run one cycle.  ``arriving``: the wavelet ``(data, color, ctrl)`` the router
        delivers this cycle, or None; ``credit``: the color of a credit the router
        returns this cycle, or None.  Returns ``(sent, credit_out)``: the wavelet sent
        this cycle and the color whose credit the core returns, each or None."""
        count = self.counters
        self._counters_at_start = list(count)
        self._waiting_colors = [bool(queue) for queue in self.queues]
        self._pending_writes = []
        self._reductions = []
        instruction = None if (not self.fetched or self.halted or not self.running
                               or self.waiting_slot is not None
                               and self.slots[self.waiting_slot].active) else self._fetch()

        # 1. Fabric input: at most one wavelet leaves the queues.
        popped_by = self._arbitrate_pop(instruction)
        popped = None
        if popped_by is not None:
            color = popped_by[1]
            popped = self.queues[color].popleft()
            count[Counter.WAVELETS_IN] += 1

        # 2. The vector pipeline: the beat in its last stage (E4, or E6 for a long one)
        # executes, VTBL's in E2 reads its table, the one in E3 its accumulators; one beat
        # issues unless a table is read.
        _, tabling, accumulating, short, _, long = self.pipeline
        executes = long if long is not None and long.long else (
            short if short is not None and not short.long else None)
        table_phase = tabling is not None and tabling.op == Op.VTBL
        sent = self._execute_beat(executes) if executes is not None else None
        issuing = None if table_phase else self._arbitrate_beat()
        if issuing is not None:
            issuing = self._issue_beat(issuing)

        def writes(beat, kind):
            return beat is not None and beat.slot.dst.kind == kind and beat.op not in REDUCTIONS

        ports = {"writes_mem": writes(executes, Kind.MEM),
                 "sends": writes(executes, Kind.FOUT) or writes(issuing, Kind.FOUT),
                 "read_b": table_phase or issuing is not None and issuing.reads_src2_mem}

        # 3. The scalar core.
        completed = False
        if not self.halted:
            count[Counter.CYCLES] += 1
            if self.waiting_slot is not None and not self.slots[self.waiting_slot].active:
                self.waiting_slot = None
            if not self.fetched:
                self.fetched = True
            elif self.waiting_slot is not None:
                pass
            elif not self.running:
                self._schedule()
            else:
                try:
                    completed, scalar_sent = self._execute(instruction, popped_by, popped, ports)
                except CoreFault as fault:
                    self._take_fault(fault.cause)
                else:
                    sent = sent or scalar_sent
        if completed or issuing is not None:
            count[Counter.BUSY] += 1

        # 4. End of cycle: writes, then the reads addressed this cycle; staged wavelets,
        # arrivals, credits, finished slots.
        for memory, address, value in self._pending_writes:
            memory[address] = value
        for number, value in self._reductions:
            self._write_reg(number, value)
        if issuing is not None:
            self._read_operands(issuing)
        if table_phase:
            tabling.table = self._table_entries(tabling.slot.src2, tabling.xs[0],
                                                tabling.slot.flags & VFlag.SHIFT)
        if accumulating is not None and accumulating.op in (Op.VMAC, Op.VMACS):
            accumulating.accs = [self.acc[accumulating.slot.dst.base + k]
                                 for k in accumulating.indices]
        if self.loading is not None and self.loading[2] is None:
            address, size, _ = self.loading
            value = int.from_bytes(self.mem[address:address + size], "little")
            self.loading = (address, size, value)
        # A short beat leaves the pipeline after E4, a long one after E6.
        self.pipeline = [issuing, *self.pipeline[:3],
                         short if short is not None and short.long else None, self.pipeline[4]]
        if popped_by is not None and popped_by[0] != "recv":
            slot = self.slots[popped_by[0]]
            value = sign_extend(popped[0], 32)
            slot.fin_popped += 1
            if slot.fin_is_scalar and _is_zero(slot.fin.dtype, value):
                count[Counter.ZERO_SKIPS] += 1
            else:
                slot.staged.append((value, slot.fin_popped - 1))
        for slot in self.slots:
            in_flight = any(beat is not None and beat.slot is slot for beat in self.pipeline)
            if slot.active and self._finished(slot) and not in_flight:
                slot.active = False
        if arriving is not None:
            data_word, color, ctrl = arriving
            if len(self.queues[color]) >= self.params.queue_depth:
                raise AssertionError(f"wavelet of color {color} arrived for a full queue")
            self.queues[color].append((data_word, ctrl))
        if credit is not None:
            self.credits[credit] += 1
        if sent is not None:
            count[Counter.WAVELETS_OUT] += 1
        self.cycle += 1
        return sent, (popped_by[1] if popped_by is not None else None)

    def _fetch(self):
        if self.pc >= self.params.code_words:
            return None
        return self.code[self.pc]

    def _arbitrate_pop(self, instruction):
        """``(who, color)``: who is a slot number or "recv"; or None."""
        wanting = []
        for number, slot in enumerate(self.slots):
            fin = slot.fin
            if (slot.active and fin is not None and fin.length > slot.fin_popped
                    and len(slot.staged) < 2 and self.queues[fin.color]):
                wanting.append(number)
        if wanting:
            winner = self.pop_turn if self.pop_turn in wanting else wanting[0]
            self.pop_turn = 1 - winner
            return winner, self.slots[winner].fin.color
        if instruction is not None:
            opcode, a, b, c, imm = decode(instruction)
            if opcode == Op.RECV and imm < self.params.colors and self.queues[imm]:
                return "recv", imm
        return None

    def _ready(self, slot):
        if not slot.active or slot.done:
            return False
        if slot.fin is not None and not slot.staged:
            return False
        if slot.dst.kind == Kind.FOUT and self.credits[slot.dst.color] == 0:
            return False
        early = [beat for beat in self.pipeline[:2] if beat is not None]     # in E1, E2
        # A short beat would write before a long one issued in the two cycles before it.
        if not slot.long and any(beat.long for beat in early):
            return False
        # A float accumulation's sum is written three cycles after its issue: a beat that
        # accumulates into the same place (VSUM: its running sum) waits for it.
        return not (slot.chained and any(
            beat.slot is slot and (slot.op == Op.VSUM or beat.indices.start == slot.position)
            for beat in early))

    def _arbitrate_beat(self):
        ready = [n for n, slot in enumerate(self.slots) if self._ready(slot)]
        if not ready:
            return None
        winner = self.beat_turn if self.beat_turn in ready else ready[0]
        self.beat_turn = 1 - winner
        return self.slots[winner]

    # --- vector beats ---

    def _issue_beat(self, slot):
        """Issue one beat of ``slot``: take its elements, staged operand and credit, and
        advance the slot; its operands are read at the end of the cycle."""
        op = slot.op
        count = min(slot.width, slot.elements - slot.position)
        fabric, chunk = 0, 0
        if slot.fin_is_scalar:
            fabric, chunk = slot.staged[0]
        elif slot.fin is not None:
            fabric = slot.staged.popleft()[0]    # the FIN element of this beat
        reads_src2 = (op in (Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN, Op.VMAC, Op.VDEQ)
                      and not slot.flags & VFlag.SCALAR)
        beat = Beat(slot, op, range(slot.position, slot.position + count), chunk, fabric,
                    reads_src2_mem=reads_src2 and slot.src2.kind == Kind.MEM, long=slot.long)
        self.counters[Counter.SRAM_READS] += count * (
            (element_bytes(slot.src.dtype) if slot.src.kind == Kind.MEM else 0)
            + (element_bytes(slot.src2.dtype) if beat.reads_src2_mem else 0))
        if slot.dst.kind == Kind.FOUT and op not in REDUCTIONS:
            self.credits[slot.dst.color] -= 1
        slot.position += count
        if slot.position == slot.elements:
            slot.position = 0
            if slot.fin_is_scalar:
                slot.staged.popleft()        # this scalar's chunk is done
            else:
                slot.done = True
            beat.last = not slot.fin_is_scalar
        return beat

    def _element(self, descriptor, index, fabric):
        """Element ``index`` of a vector operand as memory holds it now: 32-bit signed, or
        the 16 bits of an fp16 or bf16 MEM element."""
        if descriptor.kind == Kind.MEM:
            address = descriptor.address(index)
            if descriptor.dtype == Dtype.INT:
                return sign_extend(self.mem[address], 8)
            return self.mem[address] | self.mem[address + 1] << 8
        if descriptor.kind == Kind.ACC:
            return self.acc[descriptor.base + index]
        return fabric

    def _read_operands(self, beat):
        """The reads a beat addressed in its issue cycle, taken at the end of the cycle."""
        slot = beat.slot
        offset = beat.chunk * slot.elements if slot.fin_is_scalar else 0
        beat.xs = [self._element(slot.src, offset + k, beat.fabric) for k in beat.indices]
        if slot.fin_is_scalar:
            beat.ys = [beat.fabric] * len(beat.indices)
        elif slot.flags & VFlag.SCALAR:
            beat.ys = [slot.scalar] * len(beat.indices)
        elif beat.op != Op.VTBL:
            beat.ys = [self._element(slot.src2, k, beat.fabric) for k in beat.indices]

    def _table_entries(self, table, x, shift):
        """The two entries of ``table`` that VTBL reads for ``x``, as memory holds them now."""
        low = min(max(x >> shift, 0), table.length - 2)
        self.counters[Counter.SRAM_READS] += 4
        entries = []
        for k in (low, low + 1):
            address = table.base + 2 * k
            entries.append(sign_extend(self.mem[address] | self.mem[address + 1] << 8, 16))
        return entries

    def _execute_beat(self, beat):
        """The beat's last stage: its results are written (at the end of the cycle) or sent;
        returns the wavelet it sends, or None."""
        if beat.slot.floating:
            return self._execute_float(beat)
        slot, op, sent = beat.slot, beat.op, None
        shift = slot.flags & VFlag.SHIFT
        for lane, k in enumerate(beat.indices):
            x = beat.xs[lane]
            if op in REDUCTIONS:
                if op == Op.VSUM:
                    slot.result = wrap32(slot.result + x)
                elif x > slot.result:
                    slot.result, slot.result_index = x, k
                continue
            y = beat.ys[lane] if beat.ys is not None else 0
            if op == Op.VTBL:
                value = interpolate(beat.table, x, shift, slot.src2.length)
            elif op == Op.VQNT:
                rounding = (1 << (shift - 1)) if shift else 0
                value = saturate((x + rounding) >> shift, 16 if slot.flags & VFlag.WIDE else 8)
            elif op in (Op.VMAC, Op.VMACS):
                value = beat.accs[lane] + x * y
            else:
                value = {Op.VMOV: lambda: x, Op.VADD: lambda: x + y, Op.VSUB: lambda: x - y,
                         Op.VMUL: lambda: x * y, Op.VMAX: lambda: max(x, y),
                         Op.VMIN: lambda: min(x, y)}[op]()
            sent = self._write(slot.dst, k, value) or sent
        if beat.last and op in REDUCTIONS:
            self._reductions.append((slot.rd, slot.result_index if op == Op.VARGMAX
                                     else slot.result))
        return sent

    def _execute_float(self, beat):
        """:meth:`_execute_beat` of a floating-point operation (:mod:`sim.fp`)."""
        slot, op, sent = beat.slot, beat.op, None
        x_type = _float_type(slot.src)
        y_type = Dtype.FP32 if slot.flags & VFlag.SCALAR else _float_type(
            slot.fin if slot.fin_is_scalar else slot.src2)
        for lane, k in enumerate(beat.indices):
            x = beat.xs[lane]
            if op in REDUCTIONS:
                x = _widen(x_type, x)
                if op == Op.VSUM:
                    slot.result = fp.add(slot.result, x)
                elif fp.key(x) > slot.result:
                    slot.result, slot.result_index = fp.key(x), k
                continue
            if op in (Op.VITOF, Op.VDEQ):
                value = fp.from_int32(x)         # exact for int8
                if op == Op.VDEQ:
                    value = fp.mul(value, _widen(y_type, beat.ys[lane]))
            elif op == Op.VFTOI:
                value = fp.to_int32(_widen(x_type, x))
            elif op == Op.VMOV:
                value = _widen(x_type, x)
            elif op in (Op.VMAC, Op.VMACS):
                value = fp.add(beat.accs[lane] & 0xFFFFFFFF,
                               fp.mul(_widen(x_type, x), _widen(y_type, beat.ys[lane])))
            else:
                value = {Op.VADD: fp.add, Op.VSUB: fp.sub, Op.VMUL: fp.mul, Op.VMAX: fp.maximum,
                         Op.VMIN: fp.minimum}[op](_widen(x_type, x),
                                                  _widen(y_type, beat.ys[lane]))
            sent = self._write(slot.dst, k, value) or sent
        if beat.last and op in REDUCTIONS:
            self._reductions.append((slot.rd, {Op.VSUM: slot.result,
                                               Op.VRMAX: fp.from_key(slot.result),
                                               Op.VARGMAX: slot.result_index}[op]))
        return sent

    def _write(self, descriptor, index, value):
        """Write element ``index`` of ``descriptor``: an integer, or the fp32 bits that a
        16-bit float destination rounds to its format."""
        if descriptor.dtype in _FORMATS and descriptor.dtype != Dtype.FP32:
            value = fp.narrow(_FORMATS[descriptor.dtype], value & 0xFFFFFFFF)
        value = wrap32(value)
        if descriptor.kind == Kind.MEM:
            address = descriptor.address(index)
            size = element_bytes(descriptor.dtype)
            self.counters[Counter.SRAM_WRITES] += size
            self._pending_writes += [(self.mem, address + byte, value >> 8 * byte & 0xFF)
                                     for byte in range(size)]
            return None
        if descriptor.kind == Kind.ACC:
            self._pending_writes.append((self.acc, descriptor.base + index, value))
            return None
        return (value & 0xFFFFFFFF, descriptor.color, 0)

    @staticmethod
    def _finished(slot):
        if slot.fin_is_scalar:
            return slot.fin_popped == slot.chunks and not slot.staged
        return slot.done

    # --- scalar instructions ---

    def _take_fault(self, cause):
        self.fault = cause
        self.fault_pc = self.pc
        self.halted = True
        self.counters[Counter.FAULTS] += 1

    def _schedule(self):
        for task in range(TASKS):
            if self.task_blocked[task]:
                continue
            color = self.task_color[task]
            if self.task_active[task] or (color is not None and self._waiting_colors[color]):
                self.task_active[task] = False
                self.pc = self.task_entry[task]
                self.running = True
                return

    def _write_reg(self, number, value):
        if number:
            self.regs[number] = wrap32(value)

    def _check_color(self, color):
        if color >= self.params.colors:
            raise CoreFault(Fault.COLOR)

    def _execute(self, instruction, popped_by, popped, ports):
        """Execute the instruction at pc; returns ``(completed, sent)``.  ``ports`` says
        what the beats use this cycle: ``writes_mem`` (the SRAM write port), ``sends``
        (the ramp) and ``read_b`` (the SRAM's second read port)."""
        if instruction is None:
            raise CoreFault(Fault.PC_RANGE)
        opcode, a, b, c, imm = decode(instruction)
        if opcode not in Op._value2member_map_:
            raise CoreFault(Fault.ILLEGAL)
        op = Op(opcode)
        regs, p = self.regs, self.params
        rb, rc = regs[b], regs[c]
        next_pc = self.pc + 1
        sent = None
        fmt = OPS[op].format
        if op == Op.MUL:
            if self.product is None:              # the first cycle multiplies
                self.product = rb * rc
                return False, None
            self._write_reg(a, self.product)
            self.product = None
        elif fmt == Format.R:
            u = lambda v: v & 0xFFFFFFFF
            self._write_reg(a, {
                Op.ADD: lambda: rb + rc, Op.SUB: lambda: rb - rc, Op.AND: lambda: rb & rc,
                Op.OR: lambda: rb | rc, Op.XOR: lambda: rb ^ rc,
                Op.SLL: lambda: rb << (rc & 31), Op.SRL: lambda: u(rb) >> (rc & 31),
                Op.SRA: lambda: rb >> (rc & 31),
                Op.SLT: lambda: int(rb < rc), Op.SLTU: lambda: int(u(rb) < u(rc))}[op]())
        elif fmt == Format.I:
            self._write_reg(a, {
                Op.ADDI: lambda: rb + imm, Op.ANDI: lambda: rb & imm,
                Op.SLLI: lambda: rb << (imm & 31), Op.SRLI: lambda: (rb & 0xFFFFFFFF) >> (imm & 31),
                Op.SRAI: lambda: rb >> (imm & 31), Op.SLTI: lambda: int(rb < imm)}[op]())
        elif op == Op.LUI:
            self._write_reg(a, ((c << 14) | imm) << 14)
        elif fmt in (Format.LOAD, Format.STORE):
            size = 4 if op in (Op.LD, Op.ST) else 1
            address = (rb + imm) & 0xFFFFFFFF
            if fmt == Format.STORE and ports["writes_mem"]:
                return False, None
            checked = fmt == Format.LOAD and self.loading is not None   # in its first cycle
            if address + size > p.data_bytes and not checked:
                raise CoreFault(Fault.MEM_RANGE)
            if fmt == Format.LOAD:
                if self.loading is None:            # the first cycle addresses the SRAM
                    if not ports["read_b"]:
                        self.loading = (address, size, None)
                    return False, None
                self._write_reg(a, sign_extend(self.loading[2], 8 * size))
                self.loading = None
                self.counters[Counter.SRAM_READS] += size
            else:
                self.mem[address:address + size] = (rc & ((1 << (8 * size)) - 1)).to_bytes(
                    size, "little")
                self.counters[Counter.SRAM_WRITES] += size
        elif fmt == Format.BRANCH:
            taken = {Op.BEQ: rb == rc, Op.BNE: rb != rc, Op.BLT: rb < rc, Op.BGE: rb >= rc}[op]
            if taken:
                next_pc = self.pc + imm
        elif op == Op.BDEC:
            count = wrap32(regs[a] - 1)
            self._write_reg(a, count)
            if count != 0:
                next_pc = self.pc + imm
        elif op == Op.JAL:
            self._write_reg(a, self.pc + 1)
            next_pc = imm
        elif op == Op.JR:
            next_pc = rb
        elif op == Op.CSRR:
            if imm >= COUNTERS:
                raise CoreFault(Fault.ILLEGAL)
            self._write_reg(a, self._counters_at_start[imm])
        elif op == Op.RECV:
            self._check_color(imm)
            if popped_by is None or popped_by[0] != "recv":
                return False, None
            self._write_reg(a, popped[0])
        elif op == Op.SEND:
            color = imm & (SEND_CTRL - 1)
            self._check_color(color)
            if ports["sends"] or self.credits[color] == 0:
                return False, None
            self.credits[color] -= 1
            sent = (rc & 0xFFFFFFFF, color, int(bool(imm & SEND_CTRL)))
        elif fmt in (Format.TASK, Format.TBIND, Format.T):
            if a >= TASKS:
                raise CoreFault(Fault.ILLEGAL)
            if op == Op.TASK:
                self.task_entry[a] = imm
            elif op == Op.TBIND:
                self._check_color(imm)
                self.task_color[a] = imm
            elif op == Op.TACT:
                self.task_active[a] = True
            else:
                self.task_blocked[a] = op == Op.TBLOCK
        elif op == Op.TEXIT:
            self.running = False
        elif op == Op.WAIT:
            if a >= SLOTS:
                raise CoreFault(Fault.ILLEGAL)
            if self.slots[a].active:
                return False, None
        elif op == Op.HALT:
            self.halted = True
        elif op == Op.NOP:
            pass
        elif fmt in (Format.DMEM, Format.DACC, Format.DFAB):
            if a >= DESCRIPTORS:
                raise CoreFault(Fault.ILLEGAL)
            kind = {Op.DMEM: Kind.MEM, Op.DACC: Kind.ACC, Op.DFIN: Kind.FIN,
                    Op.DFOUT: Kind.FOUT}[op]
            base = rb & 0xFFFF if fmt != Format.DFAB else 0
            field, dtype = split_descriptor_imm(imm) if fmt != Format.DACC else (0, Dtype.INT)
            if fmt == Format.DMEM:
                field = sign_extend(field, STRIDE_BITS) & 0xFFFF
            self.dsr[a] = Descriptor(kind, base, rc & 0xFFFF, field, dtype)
        else:  # vector
            slot_number = 1 if imm & VFlag.SLOT1 else 0
            if op == Op.VMACS and not self.preparing:   # the first cycle: chunk geometry
                self.preparing = True
                return False, None
            if self.slots[slot_number].active:
                return False, None
            self.preparing = False
            self._launch(op, a, b, c, imm, slot_number)
            if op in REDUCTIONS or not imm & VFlag.ASYNC:
                self.waiting_slot = slot_number
        self.pc = next_pc & 0xFFFF
        return True, sent

    def _launch(self, op, a, b, c, flags, slot_number):
        """Check a vector instruction's operands (faulting on the first problem) and start it."""
        p = self.params
        scalar_operand = bool(flags & VFlag.SCALAR)
        floating = is_float_op(op, flags)
        uses_c = op not in UNARY + REDUCTIONS
        if max(b, a if op not in REDUCTIONS else 0) >= DESCRIPTORS or (
                uses_c and not scalar_operand and c >= DESCRIPTORS):
            raise CoreFault(Fault.ILLEGAL)
        src = self.dsr[b]
        dst = self.dsr[a] if op not in REDUCTIONS else None
        src2 = self.dsr[c] if uses_c and not scalar_operand else None
        readable = (Kind.MEM, Kind.ACC, Kind.FIN)
        fins = [d for d in (src, src2) if d is not None and d.kind == Kind.FIN]
        if ((floating and (not p.float_lanes or op in (Op.VQNT, Op.VTBL)))
                or src.kind not in readable or (src2 is not None and src2.kind not in readable)
                or (dst is not None and dst.kind not in (Kind.MEM, Kind.ACC, Kind.FOUT))
                or len(fins) > 1
                or (op in (Op.VMAC, Op.VMACS) and dst.kind != Kind.ACC)
                or (op == Op.VTBL and (scalar_operand or src2.kind != Kind.MEM))
                or (op == Op.VMACS and (src.kind == Kind.FIN
                                        or not scalar_operand and src2.kind != Kind.FIN))):
            raise CoreFault(Fault.ILLEGAL)
        for role, d in ((Role.DST, dst), (Role.SRC, src), (Role.SRC2, src2)):
            if d is not None and not accepts(op, flags, role, d.kind, d.dtype):
                raise CoreFault(Fault.TYPE)
        for d in (dst, src, src2):
            if d is not None and d.kind in (Kind.FIN, Kind.FOUT):
                self._check_color(d.color)
        elements = src.length if op in REDUCTIONS else dst.length
        chunks = 1
        if elements == 0:
            raise CoreFault(Fault.SHAPE)
        if op == Op.VMACS:
            # A register scalar multiplies one chunk; fabric scalars one chunk each.
            chunks = 1 if scalar_operand else src2.length
            if chunks == 0 or src.length != chunks * elements:
                raise CoreFault(Fault.SHAPE)
        elif op == Op.VTBL:
            if src.length != elements or src2.length < 2:
                raise CoreFault(Fault.SHAPE)
        elif op not in REDUCTIONS:
            if src.length != elements or (src2 is not None and src2.length != elements):
                raise CoreFault(Fault.SHAPE)
        for d, length in ((dst, elements), (src, src.length), (src2, None)):
            if d is None:
                continue
            length = d.length if length is None else length
            if d.kind == Kind.MEM:
                table = op == Op.VTBL and d is src2
                size = element_bytes(d.dtype)
                last = d.base + 2 * length - 1 if table else d.address(length - 1) + size - 1
                if not (d.base + size <= p.data_bytes and size - 1 <= last < p.data_bytes):
                    raise CoreFault(Fault.MEM_RANGE)
            elif d.kind == Kind.ACC and d.base + length > p.acc_words:
                raise CoreFault(Fault.ACC_RANGE)
        vectors = [d for d in (dst, src, src2 if op not in (Op.VTBL, Op.VMACS) else None)
                   if d is not None]
        parallel = op != Op.VTBL and not (floating and op == Op.VSUM) and all(
            d.kind == Kind.ACC or (d.kind == Kind.MEM and sign_extend(d.stride, 16)
                                   == element_bytes(d.dtype))
            for d in vectors)
        width = (p.float_width if floating else self.lanes) if parallel else 1
        # The float reductions' maxima use the integer lanes' comparators: they are short.
        long = floating and op not in (Op.VRMAX, Op.VARGMAX)
        slot = Slot(active=True, op=op, flags=flags, dst=dst or Descriptor(), src=src,
                    src2=src2 or Descriptor(), scalar=self.regs[c] if scalar_operand else 0,
                    width=width, rd=a, elements=elements, chunks=chunks,
                    fin=fins[0] if fins else None,
                    fin_is_scalar=op == Op.VMACS and not scalar_operand,
                    result=(INT32_MIN if op in (Op.VRMAX, Op.VARGMAX)
                            else fp.FP32.sign_bit if floating and op == Op.VSUM else 0),
                    floating=floating, long=long,
                    chained=long and op in (Op.VMAC, Op.VMACS, Op.VSUM))
        if op == Op.VMACS and scalar_operand and _is_zero(
                Dtype.FP32 if floating else Dtype.INT, slot.scalar):
            self.counters[Counter.ZERO_SKIPS] += 1
            slot.active = False
        self.slots[slot_number] = slot


def run(core, sender=None, receiver=None, max_cycles=100_000):
    """Step ``core`` until it is idle (halted, microthreads done) or ``max_cycles``;
    returns the cycles run.  ``sender`` and ``receiver`` model the router's side."""
    sender = sender or RampSender(core.params, [])
    receiver = receiver or RampReceiver(core.params)
    cycles = 0
    while not core.idle and cycles < max_cycles:
        arriving = sender.drive(cycles)
        credit = receiver.drive(cycles)
        sent, credit_out = core.step(arriving, credit)
        sender.sample(credit_out)
        receiver.sample(cycles, sent)
        cycles += 1
    return cycles


class RampSender:
    """The router's ramp output, as the core sees it: a credit-respecting sender.

    ``wavelets`` is a list of ``(earliest cycle, data, color)``, kept in order
    within each color.  Each cycle the sender drives the first wavelet of the
    list that is due (its earliest cycle has come), is the oldest of its color,
    and has a credit: so a color whose queue is full never holds up another.  A
    credit the core returns in cycle t can be spent from cycle t + 1.  The
    testbench drives the RTL with the same object, so both see the same
    wavelets in the same cycles.
    """

    def __init__(self, params, wavelets):
        self.wavelets = list(wavelets)
        self.credits = [params.queue_depth] * params.colors

    def drive(self, cycle):
        seen = set()
        for index, (earliest, data_word, color) in enumerate(self.wavelets):
            if color in seen:
                continue
            seen.add(color)
            if cycle >= earliest and self.credits[color]:
                del self.wavelets[index]
                self.credits[color] -= 1
                return data_word & 0xFFFFFFFF, color, 0
        return None

    def sample(self, credit_color):
        if credit_color is not None:
            self.credits[credit_color] += 1


class RampReceiver:
    """The router's ramp input: queues of ``queue_depth`` that drain one wavelet a cycle
    when ``ready(cycle)`` says so (back-pressure), returning a credit for each."""

    def __init__(self, params, ready=lambda cycle: True):
        self.queue = collections.deque()
        self.depth = params.queue_depth
        self.ready = ready
        self.received = []       # (cycle, data, color, ctrl)

    def drive(self, cycle):
        if self.queue and self.ready(cycle):
            return self.queue.popleft()
        return None

    def sample(self, cycle, sent):
        if sent is not None:
            self.received.append((cycle, *sent))
            self.queue.append(sent[1])
            if self.queue.count(sent[1]) > self.depth:
                raise AssertionError(f"cycle {cycle}: a wavelet of color {sent[1]} "
                                     f"arrived without a credit")
