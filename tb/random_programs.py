"""Seeded random programs for differential testing of the core (RTL against ISS).

:func:`random_case` builds a program that terminates, from blocks chosen at
random: scalar arithmetic, loads and stores, forward branches, counted loops,
counter reads, descriptors and vector operations of every kind (synchronous
and asynchronous, on both slots, with memory, accumulator and fabric
operands), scalar fabric access, task switches (activated, blocked and
data-triggered), and sometimes a fault to end on.  The wavelets the program
takes from the fabric are supplied, per color, in the right number, so a
program never waits for ever; the router's side back-pressures at random.

Outcomes are not predicted here: whatever the ISS does, the RTL must do the
same, to the bit and the cycle.
"""

import random

from host.asm import Builder
from rtl.isa import COUNTERS, CONVERSIONS, DESCRIPTORS, SLOTS, TASKS, Dtype, Op, VFlag, encode
from sim import fp
from sim.core_session import Case

from . import float_values

__all__ = ["random_case"]

VECTOR_OPS = [Op.VMOV, Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN, Op.VQNT, Op.VTBL, Op.VMAC,
              Op.VMACS, Op.VSUM, Op.VRMAX, Op.VARGMAX]
#: With float lanes: the operations with a floating-point form, and the conversions.
FLOAT_OPS = [op for op in VECTOR_OPS if op not in (Op.VQNT, Op.VTBL)] + list(CONVERSIONS)
#: Operand types of the float operations: MEM elements, and the fabric's.
MEM_FLOATS = (Dtype.FP16, Dtype.BF16)
FABRIC_FLOATS = (Dtype.FP16, Dtype.BF16, Dtype.FP32)
REGISTERS = range(16)      # any may be read and written: every arm of the register file


class _Generator:
    def __init__(self, params, seed):
        self.p = params
        self.rng = random.Random(seed)
        self.b = Builder(params)
        self.wavelets = []           # (earliest, data, color)
        self.labels = 0
        self.data = params.data_bytes
        self.table_base = self.data - 256        # VTBL tables live here
        self.vector_top = self.data - 512        # vectors below this
        self.fabric_colors = list(range(params.colors))
        self.reserved = set()                    # registers a block keeps (a loop's counter)
        self.descriptors = [0, 1, 2]             # a vector block's, drawn for each

    def label(self):
        self.labels += 1
        return f"L{self.labels}"

    def reg(self):
        """A register to write: any the block in progress does not keep."""
        return self.rng.choice([r for r in REGISTERS if r not in self.reserved])

    def source(self):
        """A register to read: any, the operand set-up's and r0 too."""
        return self.rng.choice(REGISTERS)

    def value(self):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randint(-8, 8)
        if r < 0.6:
            return self.rng.randint(-200, 200)
        return self.rng.randint(-(1 << 31), (1 << 31) - 1)

    def supply(self, color, count, zeros=0.0, floats=None):
        """``count`` wavelets of ``color`` (some ``zeros``): integers, or floats of the
        type ``floats`` (an fp16 or bf16 in a word's low half, with junk above it)."""
        start = self.rng.randint(0, 60)
        for _ in range(count):
            if floats is None:
                value = 0 if self.rng.random() < zeros else self.rng.choice(
                    [self.rng.randint(-128, 127), self.rng.getrandbits(32)])
            else:
                fmt = {Dtype.FP16: fp.FP16, Dtype.BF16: fp.BF16, Dtype.FP32: fp.FP32}[floats]
                value = (self.rng.choice([0, fmt.sign_bit]) if self.rng.random() < zeros
                         else float_values.value(self.rng, fmt))
                value |= self.rng.getrandbits(32) & ~((1 << fmt.bits) - 1)
            self.wavelets.append((start, value & 0xFFFFFFFF, color))
            start += self.rng.randint(0, 3)

    # --- blocks ---

    def scalar(self):
        b, rng = self.b, self.rng
        op = rng.choice(["r", "i", "li", "lui"])
        if op == "r":
            name = rng.choice(["add", "sub", "and_", "or_", "xor", "sll", "srl", "sra", "mul",
                               "slt", "sltu"])
            getattr(b, name)(self.reg(), self.source(), self.source())
        elif op == "i":
            name = rng.choice(["addi", "andi", "slli", "srli", "srai", "slti"])
            imm = rng.randint(0, 31) if name in ("slli", "srli", "srai") else rng.randint(
                -8192, 8191)
            getattr(b, name)(self.reg(), self.source(), imm)
        elif op == "li":
            b.li(self.reg(), self.value())
        else:
            b.lui(self.reg(), rng.getrandbits(18))

    def memory(self):
        b, rng = self.b, self.rng
        word = rng.random() < 0.5
        address = rng.randint(0, self.data - (4 if word else 1))
        base, offset = rng.choice(REGISTERS), rng.randint(-64, 64)
        if base:
            b.li(base, address - offset)
        else:
            offset = address
        if rng.random() < 0.5:
            (b.ld if word else b.ldb)(self.reg(), base, offset)
        else:
            (b.st if word else b.stb)(self.source(), base, offset)

    def branch(self):
        b, rng = self.b, self.rng
        skip = self.label()
        getattr(b, rng.choice(["beq", "bne", "blt", "bge"]))(self.source(), self.source(), skip)
        self.scalar()
        b.label(skip)

    def loop(self):
        b = self.b
        top = self.label()
        counter = self.rng.choice(REGISTERS[1:])
        b.li(counter, self.rng.randint(1, 4))
        b.label(top)
        self.reserved = {counter}
        self.scalar()
        self.reserved = set()
        b.bdec(counter, top)

    def counter(self):
        self.b.csrr(self.reg(), self.rng.randrange(COUNTERS))

    def descriptor(self, d, length, kind, dtype=Dtype.INT):
        """Point descriptor d at a random operand of ``length`` elements of ``kind`` (and of
        ``dtype``, for MEM and the fabric)."""
        b, rng, p = self.b, self.rng, self.p
        d = self.descriptors[d]
        b.li(14, length)
        if kind == "acc":
            b.li(13, rng.randint(0, p.acc_words - length))
            b.dacc(d, 13, 14)
        elif kind == "mem":
            size = 1 if dtype == Dtype.INT else 2
            stride = rng.choice([1, 1, 1, 2, 3, -1, -2]) * size
            span = (length - 1) * abs(stride) + size
            start = rng.randint(0, self.vector_top - span)
            b.li(13, start + (span - size if stride < 0 else 0))
            b.dmem(d, 13, 14, stride, dtype=dtype)
        else:  # fabric
            color = rng.choice(self.fabric_colors)
            (b.dfin if kind == "fin" else b.dfout)(d, 14, color, dtype=dtype)
            return color
        return None

    def float_vector(self):
        """A floating-point operation or a conversion, on operands of random float types."""
        b, rng, p = self.b, self.rng, self.p
        d0, d1, d2 = self.descriptors = rng.sample(range(DESCRIPTORS), 3)
        op = rng.choice(FLOAT_OPS)
        length = min(rng.choice([1, 2, 5, 7, 8, 9, 16, 19, 40]), p.acc_words // 2)
        flags = {"async_": rng.random() < 0.3, "slot": rng.randint(0, 1)}
        if op not in CONVERSIONS:
            flags["float_"] = True

        def operand(d, count, kinds, integer=False):
            kind = rng.choice(kinds)
            dtype = Dtype.INT if integer else rng.choice(
                MEM_FLOATS if kind == "mem" else FABRIC_FLOATS)
            color = self.descriptor(d, count, kind, dtype)
            if kind == "fin":
                self.supply(color, count, zeros=0.3, floats=None if integer else dtype)
            return kind

        name = op.name.lower()
        if op in (Op.VSUM, Op.VRMAX, Op.VARGMAX):
            operand(1, length, ["mem", "acc", "acc", "fin"])
            getattr(b, name)(self.reg(), d1, float_=True)
            return
        if op == Op.VMACS:
            chunks = rng.randint(1, 5)
            self.descriptor(0, length, "acc")
            operand(1, length * chunks, ["mem"] + (["acc"] if length * chunks <= p.acc_words
                                                  else []))
            if chunks > 1 or rng.random() < 0.5:
                operand(2, chunks, ["fin"])
                b.vmacs(d0, d1, d2, **flags)
            else:
                b.li(12, rng.choice([0, 1 << 31, self.float_value()]))
                b.vmacs(d0, d1, 12, scalar=True, **flags)
            return
        integer_dst = op == Op.VFTOI
        if op in (Op.VMAC, Op.VFTOI, Op.VITOF):
            dst_kinds = ["acc"] if op == Op.VMAC or rng.random() < 0.7 else ["fout"]
        else:
            dst_kinds = ["mem", "acc", "fout"]
        kind = rng.choice(dst_kinds)
        dtype = (Dtype.INT if integer_dst else Dtype.FP32 if op == Op.VITOF and kind == "fout"
                 else rng.choice(MEM_FLOATS if kind == "mem" else FABRIC_FLOATS))
        self.descriptor(0, length, kind, dtype)
        src = operand(1, length, ["mem"] if op == Op.VDEQ else ["mem", "acc", "fin"],
                      integer=op in (Op.VITOF, Op.VDEQ))
        if op in (Op.VMOV, Op.VITOF, Op.VFTOI):
            getattr(b, name)(d0, d1, **flags)
        elif rng.random() < 0.3:
            b.li(12, self.float_value())
            getattr(b, name)(d0, d1, 12, scalar=True, **flags)
        else:
            operand(2, length, ["mem", "acc"] + (["fin"] if src != "fin" else []))
            getattr(b, name)(d0, d1, d2, **flags)

    def float_value(self):
        """An fp32 scalar: ordinary numbers mostly, the corner classes too."""
        return float_values.value(self.rng, fp.FP32) if self.rng.random() < 0.4 else \
            int(float_values.bits32([self.rng.uniform(-4, 4)])[0])

    def vector(self):
        b, rng, p = self.b, self.rng, self.p
        d0, d1, d2 = self.descriptors = rng.sample(range(DESCRIPTORS), 3)
        op = rng.choice(VECTOR_OPS)
        length = rng.choice([1, 2, 5, p.lanes - 1, p.lanes, p.lanes + 3, 2 * p.lanes, 37])
        length = min(length, p.acc_words)
        flags = {"async_": rng.random() < 0.3, "slot": rng.randint(0, 1)}
        if op in (Op.VQNT, Op.VTBL):
            flags["shift"] = rng.randint(0, 12)
        if op == Op.VQNT:
            flags["wide"] = rng.random() < 0.5

        def readable():
            return rng.choice(["mem", "mem", "acc", "fin"])

        if op in (Op.VSUM, Op.VRMAX, Op.VARGMAX):
            kind = readable()
            color = self.descriptor(1, length, kind)
            if kind == "fin":
                self.supply(color, length)
            getattr(b, op.name.lower())(self.reg(), d1)
            return
        name = op.name.lower()
        if op == Op.VMACS:
            chunks = rng.randint(1, 6) if rng.random() < 0.7 else 1
            self.descriptor(0, length, "acc")
            fits_acc = length * chunks <= p.acc_words
            self.descriptor(1, length * chunks, rng.choice(["mem", "acc"] if fits_acc else ["mem"]))
            if chunks > 1 or rng.random() < 0.5:
                color = self.descriptor(2, chunks, "fin")
                self.supply(color, chunks, zeros=0.4)
                b.vmacs(d0, d1, d2, **flags)
            else:
                b.li(12, rng.choice([0, self.value()]))
                b.vmacs(d0, d1, 12, scalar=True, **flags)
            return
        dst_kind = "acc" if op == Op.VMAC else rng.choice(["mem", "acc", "fout"])
        self.descriptor(0, length, dst_kind)
        src_kind = readable()
        color = self.descriptor(1, length, src_kind)
        if src_kind == "fin":
            self.supply(color, length)
        if op in (Op.VMOV, Op.VQNT):
            getattr(b, name)(d0, d1, **flags)
        elif op == Op.VTBL:
            entries = rng.randint(2, 100)
            b.li(13, self.table_base + rng.randint(0, 256 - 2 * entries))
            b.li(14, entries)
            b.dmem(d2, 13, 14, 1)
            b.vtbl(d0, d1, d2, **flags)
        elif rng.random() < 0.3:
            b.li(12, self.value())
            getattr(b, name)(d0, d1, 12, scalar=True, **flags)
        else:
            kind2 = rng.choice(["mem", "acc"] + (["fin"] if src_kind != "fin" else []))
            color = self.descriptor(2, length, kind2)
            if kind2 == "fin":
                self.supply(color, length)
            getattr(b, name)(d0, d1, d2, **flags)

    def fabric(self):
        b, rng = self.b, self.rng
        color = rng.choice(self.fabric_colors)
        if rng.random() < 0.5:
            self.supply(color, 1)
            b.recv(self.reg(), color)
        else:
            b.send(self.source(), color, ctrl=rng.random() < 0.2)

    def task_switch(self):
        """Leave the running task and continue in another: activated, blocked first, or
        started by a wavelet on a bound color."""
        b, rng = self.b, self.rng
        task = rng.randint(0, 7)
        target = self.label()
        b.task(task, target)
        b.tunblock(task)          # an earlier data-triggered switch may have blocked it
        how = rng.choice(["activate", "blocked", "data"])
        if how == "data":
            color = rng.choice(self.fabric_colors)
            b.tbind(task, color)
            self.supply(color, 1)
            b.texit()
            b.label(target)
            b.recv(self.reg(), color)
            b.tblock(task)        # so that later wavelets of the color do not restart it
            return
        if how == "blocked":
            b.tblock(task)
            b.tact(task)
            b.tunblock(task)
        else:
            b.tact(task)
        b.texit()
        b.label(target)

    def fault(self):
        b, rng, p = self.b, self.rng, self.p
        choice = rng.randrange(14)
        if choice == 0:
            b.inst(0)                                       # illegal opcode
        elif choice == 1:
            b.ld(1, 0, p.data_bytes - 2)                    # load past the end
        elif choice == 2:
            b.inst(encode(Op.CSRR, 1, 0, 0, COUNTERS + 3))  # no such counter
        elif choice == 3:
            b.li(1, p.code_words + 5)                       # jump out of the code memory
            b.jr(1)
        elif choice == 4:
            b.inst(encode(Op.RECV, 1, 0, 0, p.colors))      # no such color
        elif choice == 5:
            b.li(13, p.data_bytes - 3)                      # a vector past the end
            b.li(14, 8)
            b.dmem(0, 13, 14, 1)
            b.vmov(0, 0)
        elif choice == 6:
            b.li(14, 3)                                     # lengths that do not match
            b.dacc(0, 0, 14)
            b.li(14, 4)
            b.dacc(1, 0, 14)
            b.vadd(0, 1, 1)
        elif choice == 7:
            b.li(14, 4)                                     # a float op on int8 (TYPE),
            b.dacc(0, 0, 14)                                # or ILLEGAL without float lanes
            b.dmem(1, 0, 14, 1)
            b.inst(encode(Op.VADD, 0, 1, 1, VFlag.FLOAT))
        elif choice == 8:
            b.inst(encode(Op.SEND, 0, 1, 0, p.colors))      # send on no such color
        elif choice == 9:                                   # no such task
            b.inst(encode(rng.choice([Op.TASK, Op.TBIND, Op.TACT, Op.TBLOCK, Op.TUNBLOCK]),
                          rng.randrange(TASKS, 16)))
        elif choice == 10:
            b.inst(encode(Op.TBIND, rng.randrange(TASKS), 0, 0, p.colors))  # no such color
        elif choice == 11:
            b.inst(encode(Op.WAIT, rng.randrange(SLOTS, 16)))               # no such slot
        elif choice == 12:                                  # no such descriptor
            b.inst(encode(rng.choice([Op.DMEM, Op.DACC, Op.DFIN, Op.DFOUT]),
                          rng.randrange(DESCRIPTORS, 16), 0, 0, 1))
        else:
            b.li(14, 4)                                     # one operand past the
            b.dacc(0, 0, 14)                                # accumulators' end
            b.dacc(1, 0, 14)
            b.dacc(2, 0, 14)
            b.li(13, p.acc_words - 2)
            b.dacc(rng.randrange(3), 13, 14)
            b.vadd(0, 1, 2)

    def build(self, blocks):
        weights = [(self.scalar, 6), (self.memory, 3), (self.branch, 2), (self.loop, 1),
                   (self.counter, 1), (self.vector, 6), (self.fabric, 2), (self.task_switch, 1)]
        if self.p.float_lanes:
            weights.append((self.float_vector, 5))
        choices, w = zip(*weights)
        for _ in range(blocks):
            self.rng.choices(choices, w)[0]()
        if self.rng.random() < 0.15:
            self.fault()
        else:
            self.b.wait(0)
            self.b.wait(1)
            for register in REGISTERS[1:]:    # leave a trace of every register in memory
                self.b.st(register, 0, self.data - 4 * register)
            self.b.halt()
        return self.b.build()


def random_case(params, seed, blocks=12):
    """A random :class:`Case` for ``params``, fully determined by ``seed``."""
    generator = _Generator(params, seed)
    program = generator.build(blocks)
    rng = generator.rng
    data = bytes(rng.getrandbits(8) for _ in range(params.data_bytes))
    acc = [rng.randint(-1000, 1000) if rng.random() < 0.8 else rng.getrandbits(32)
           for _ in range(params.acc_words)]
    return Case(program.words(), data, acc, generator.wavelets,
                ready_seed=seed if rng.random() < 0.7 else None,
                max_cycles=20_000)
