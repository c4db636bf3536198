"""The instruction set of the tessera core: the one definition of its encoding.

The RTL decoder (:mod:`rtl.core`), the assembler (:mod:`host.asm`) and the
instruction-set simulator (:mod:`sim.iss`) all take opcodes, fields, flags,
counter numbers and fault causes from here.

Every instruction is one 32-bit word with the same four fields
(:data:`INSTRUCTION`)::

    31      26 25   22 21   18 17   14 13            0
    | opcode  |   a   |   b   |   c   |      imm      |

``a`` is usually the destination (a scalar register or a descriptor register),
``b`` and ``c`` the sources, ``imm`` a 14-bit immediate, signed where the
operation says so.  Opcode 0 is illegal, so running into empty code memory
faults instead of doing something quiet.

Machine state: 16 scalar registers of 32 bits (``r0`` reads as 0), 8
descriptor registers (``d0``..``d7``), 8 tasks, 2 vector microthread slots,
the performance counters of :class:`Counter` and a fault state.

Descriptors (as Cerebras's DSDs) name the operands of vector instructions,
each with an element type (:class:`Dtype`):

- ``MEM``: elements in data SRAM at ``base + i * stride`` (bytes; the stride is
  signed): int8 (read sign-extended to 32 bits, written as their low 8 bits),
  or fp16 or bf16 (2 bytes, little-endian);
- ``ACC``: 32-bit elements of the accumulator file at ``base + i``: int32 or
  fp32, as the operation that uses them says;
- ``FIN``: ``length`` wavelets of a color from the fabric: int32 or fp32 words,
  or fp16 or bf16 in a word's low 16 bits;
- ``FOUT``: ``length`` wavelets to a color on the fabric, the same.

Vector instructions (``V*``) read the descriptors ``b`` and ``c`` (or the
scalar register ``c`` with :attr:`VFlag.SCALAR`) and write the descriptor
``a``.  An operation is integer, or floating point with :attr:`VFlag.FLOAT`
(and ``VITOF``, ``VFTOI``, ``VDEQ``, which convert between the two); each
operand's type must be one the operation takes (:func:`accepts`).  Each runs
in microthread slot 0 or 1 (:attr:`VFlag.SLOT1`); without :attr:`VFlag.ASYNC`
the core waits for it to finish.  The precise semantics, the arithmetic
(:mod:`sim.fp`) and the timing are those of :mod:`sim.iss`, which the RTL
matches cycle for cycle.
"""

import enum
from dataclasses import dataclass

from amaranth.lib import data

__all__ = ["INSTRUCTION", "Op", "Format", "OPS", "VFlag", "Kind", "Dtype", "Counter", "Fault",
           "REGISTERS", "DESCRIPTORS", "TASKS", "SLOTS", "encode", "decode", "sign_extend",
           "IMM_BITS", "descriptor_layout", "SEND_CTRL", "REDUCTIONS", "COUNTERS",
           "DTYPE_SHIFT", "STRIDE_BITS", "descriptor_imm", "split_descriptor_imm",
           "element_bytes", "accepts", "Role", "is_float_op", "UNARY", "CONVERSIONS"]

IMM_BITS = 14
REGISTERS = 16
DESCRIPTORS = 8
TASKS = 8
SLOTS = 2

INSTRUCTION = data.StructLayout({
    "imm": IMM_BITS,
    "c": 4,
    "b": 4,
    "a": 4,
    "opcode": 6,
})


class Format(enum.Enum):
    """How the assembler writes an instruction's operands, and which fields they fill."""
    NONE = "none"            # HALT                        no operands
    R = "r"                  # ADD rd, rs1, rs2            a, b, c
    I = "i"                  # ADDI rd, rs1, imm           a, b, imm (signed)
    U = "u"                  # LUI rd, imm18               a, {c, imm} (18 bits)
    LOAD = "load"            # LD rd, imm(rs1)             a, b, imm (signed)
    STORE = "store"          # ST rs2, imm(rs1)            c, b, imm (signed)
    BRANCH = "branch"        # BEQ rs1, rs2, label         b, c, imm = target - pc (signed)
    LOOP = "loop"            # BDEC r, label               a, imm = target - pc (signed)
    JUMP = "jump"            # JAL rd, label               a, imm = target (absolute)
    JR = "jr"                # JR rs1                      b
    CSR = "csr"              # CSRR rd, counter            a, imm
    RECV = "recv"            # RECV rd, color              a, imm
    SEND = "send"            # SEND rs2, color[, ctrl]     c, imm = color | ctrl << 5
    TASK = "task"            # TASK t, label               a, imm = entry (absolute)
    TBIND = "tbind"          # TBIND t, color              a, imm
    T = "t"                  # TACT t (also TBLOCK, TUNBLOCK)  a
    SLOT = "slot"            # WAIT slot                   a
    DMEM = "dmem"            # DMEM d, rbase, rlen, stride  a, b, c, imm = stride | dtype << 12
    DACC = "dacc"            # DACC d, rbase, rlen         a, b, c
    DFAB = "dfab"            # DFIN d, rlen, color         a, c, imm = color | dtype << 12
    V = "v"                  # VADD dd, ds0, ds1|rs [flags]  a, b, c, imm = flags
    VRED = "vred"            # VSUM rd, ds [float]         a, b, imm = flags


class Op(enum.IntEnum):
    # scalar arithmetic, register-register: rd = rs1 op rs2 (32-bit, wrapping)
    ADD = 1
    SUB = 2
    AND = 3
    OR = 4
    XOR = 5
    SLL = 6
    SRL = 7
    SRA = 8
    MUL = 9                  # low 32 bits of the product
    SLT = 10                 # signed compare: 1 or 0
    SLTU = 11                # unsigned compare
    # register-immediate; the immediate is sign-extended (shifts use its low 5 bits)
    ADDI = 12
    ANDI = 13
    SLLI = 14
    SRLI = 15
    SRAI = 16
    SLTI = 17
    LUI = 18                 # rd = imm18 << 14
    # data SRAM, byte addresses: a word is 4 bytes, little-endian, any alignment
    LD = 19
    LDB = 20                 # one byte, sign-extended
    ST = 21
    STB = 22
    # control: branch targets are relative to the branch, jumps absolute
    BEQ = 23
    BNE = 24
    BLT = 25
    BGE = 26
    BDEC = 27                # r -= 1; branch if r != 0: closes a counted loop in one cycle
    JAL = 28                 # rd = pc + 1; pc = target
    JR = 29                  # pc = rs1
    CSRR = 30                # rd = counter[imm]
    # scalar fabric access
    RECV = 31                # rd = data of the next wavelet of a color (waits for one)
    SEND = 32                # send rs2 on a color (waits for a credit)
    # tasks
    TASK = 33                # entry point of task t
    TBIND = 34               # task t runs when a wavelet of the color is waiting
    TACT = 35                # activate task t: it runs when the core is next free
    TBLOCK = 36              # task t may not start
    TUNBLOCK = 37
    TEXIT = 38               # end the running task; the scheduler picks the next
    WAIT = 39                # wait until microthread slot a is idle
    HALT = 40                # stop the core
    NOP = 41
    # descriptor registers
    DMEM = 42                # d = MEM(base=rs1, length=rs2, stride=imm)
    DACC = 43                # d = ACC(base=rs1, length=rs2)
    DFIN = 44                # d = FIN(color=imm, length=rs2)
    DFOUT = 45               # d = FOUT(color=imm, length=rs2)
    # vector operations: a = destination descriptor, b and c sources
    VMOV = 46                # a[i] = b[i]
    VADD = 47                # a[i] = b[i] + c[i]
    VSUB = 48                # a[i] = b[i] - c[i]
    VMUL = 49                # a[i] = low 32 bits of b[i] * c[i]
    VMAX = 50                # signed
    VMIN = 51
    VQNT = 52                # a[i] = saturate((b[i] + round) >> shift) to int8 or int16
    VTBL = 53                # a[i] = table c at b[i] >> shift, interpolated (see sim.iss)
    VMAC = 54                # a[i] += b[i] * c[i], a is ACC
    VMACS = 55               # a[k] += b[j * len(a) + k] * s_j, a is ACC: s_j is the scalar
                             # register c (one chunk, j = 0) or the j-th wavelet of FIN c
    VSUM = 56                # rd = sum of b (wrapping)
    VRMAX = 57               # rd = max of b
    VARGMAX = 58             # rd = index of the first maximum of b
    # conversions between the integer and the floating-point types
    VITOF = 59               # a[i] = fp32 of the int32 (or int8) b[i], rounded to nearest even
    VFTOI = 60               # a[i] = int32 of b[i], rounded to nearest even and saturated
    VDEQ = 61                # a[i] = int8 b[i] * s (dequantise): s is the fp32 c[i] or rs


@dataclass(frozen=True)
class OpInfo:
    op: Op
    format: Format
    signed_imm: bool = False


_FORMATS = {
    Format.R: [Op.ADD, Op.SUB, Op.AND, Op.OR, Op.XOR, Op.SLL, Op.SRL, Op.SRA, Op.MUL, Op.SLT,
               Op.SLTU],
    Format.I: [Op.ADDI, Op.ANDI, Op.SLLI, Op.SRLI, Op.SRAI, Op.SLTI],
    Format.U: [Op.LUI],
    Format.LOAD: [Op.LD, Op.LDB],
    Format.STORE: [Op.ST, Op.STB],
    Format.BRANCH: [Op.BEQ, Op.BNE, Op.BLT, Op.BGE],
    Format.LOOP: [Op.BDEC],
    Format.JUMP: [Op.JAL],
    Format.JR: [Op.JR],
    Format.CSR: [Op.CSRR],
    Format.RECV: [Op.RECV],
    Format.SEND: [Op.SEND],
    Format.TASK: [Op.TASK],
    Format.TBIND: [Op.TBIND],
    Format.T: [Op.TACT, Op.TBLOCK, Op.TUNBLOCK],
    Format.NONE: [Op.TEXIT, Op.HALT, Op.NOP],
    Format.SLOT: [Op.WAIT],
    Format.DMEM: [Op.DMEM],
    Format.DACC: [Op.DACC],
    Format.DFAB: [Op.DFIN, Op.DFOUT],
    Format.V: [Op.VMOV, Op.VADD, Op.VSUB, Op.VMUL, Op.VMAX, Op.VMIN, Op.VQNT, Op.VTBL, Op.VMAC,
               Op.VMACS, Op.VITOF, Op.VFTOI, Op.VDEQ],
    Format.VRED: [Op.VSUM, Op.VRMAX, Op.VARGMAX],
}
_SIGNED = {Format.I, Format.LOAD, Format.STORE, Format.BRANCH, Format.LOOP}

#: Every opcode's format, by opcode.
OPS = {op: OpInfo(op, fmt, fmt in _SIGNED) for fmt, ops in _FORMATS.items() for op in ops}
assert set(OPS) == set(Op), "every opcode has exactly one format"

#: ``SEND``'s immediate: the color in the bits below this one, and this bit for a control
#: wavelet.
SEND_CTRL = 1 << 5

REDUCTIONS = (Op.VSUM, Op.VRMAX, Op.VARGMAX)
#: Vector operations with one source operand.
UNARY = (Op.VMOV, Op.VQNT, Op.VITOF, Op.VFTOI)
#: The conversions: floating point whatever the flags say.
CONVERSIONS = (Op.VITOF, Op.VFTOI, Op.VDEQ)

#: DMEM, DFIN, DFOUT: the immediate's bits from here up are the element type, those below
#: the stride (DMEM, signed) or the color.
DTYPE_SHIFT = 12
STRIDE_BITS = DTYPE_SHIFT


class VFlag(enum.IntFlag):
    """The ``imm`` field of a vector instruction."""
    SHIFT = 0x1F             # VQNT, VTBL: the shift amount (bits 4..0)
    WIDE = 1 << 5            # VQNT: saturate to int16 instead of int8
    SCALAR = 1 << 6          # operand c is the scalar register c, not a descriptor
    ASYNC = 1 << 7           # do not wait for the operation to finish
    SLOT1 = 1 << 8           # run in microthread slot 1 instead of 0
    FLOAT = 1 << 9           # floating point: the operands are fp16, bf16 or fp32 (sim.fp)


class Kind(enum.IntEnum):
    """What a descriptor register describes."""
    NONE = 0                 # after reset: using it faults
    MEM = 1
    ACC = 2
    FIN = 3
    FOUT = 4


class Dtype(enum.IntEnum):
    """A descriptor's element type (an ``ACC`` descriptor has none: its operation decides)."""
    INT = 0                  # MEM: int8; FIN, FOUT: int32 words
    FP16 = 1                 # IEEE binary16: 2 bytes in MEM, a word's low 16 bits on the fabric
    BF16 = 2                 # bfloat16, the same
    FP32 = 3                 # FIN, FOUT only: binary32 words


def element_bytes(dtype):
    """The bytes of a MEM element of ``dtype``."""
    return 1 if dtype == Dtype.INT else 2


def descriptor_imm(field, dtype):
    """DMEM's, DFIN's and DFOUT's immediate: the stride (signed) or color, and the type."""
    return field & ((1 << DTYPE_SHIFT) - 1) | int(dtype) << DTYPE_SHIFT


def split_descriptor_imm(imm):
    """``(field, dtype)`` of a descriptor instruction's immediate (the stride unsigned)."""
    return imm & ((1 << DTYPE_SHIFT) - 1), Dtype(imm >> DTYPE_SHIFT & 3)


class Role(enum.Enum):
    """An operand of a vector instruction: the destination ``a``, the sources ``b``, ``c``."""
    DST = "destination"
    SRC = "first source"
    SRC2 = "second source"


def is_float_op(op, flags):
    return op in CONVERSIONS or bool(flags & VFlag.FLOAT)


def accepts(op, flags, role, kind, dtype):
    """Whether operation ``op`` (with ``flags``) takes an operand of ``kind`` and ``dtype`` as
    ``role``.  Integer operations take int8 MEM, ACC and int32 fabric operands; floating-point
    operations fp16 or bf16 MEM, ACC and fp16, bf16 or fp32 fabric operands.  ``VITOF``
    converts an integer source to an fp32 destination (ACC or fp32 FOUT), ``VFTOI`` a
    floating-point source to an int32 destination (ACC or int32 FOUT), ``VDEQ`` an int8 MEM
    source to any floating-point destination by a floating-point scale ``c``.  (Whether the
    kind itself may be that operand, a FIN destination say, is checked apart.)"""
    if kind == Kind.ACC:
        return True
    integer = dtype == Dtype.INT
    floating = not integer and (kind != Kind.MEM or dtype != Dtype.FP32)
    if op == Op.VITOF:
        return integer if role != Role.DST else dtype == Dtype.FP32
    if op == Op.VFTOI:
        return integer if role == Role.DST else floating
    if op == Op.VDEQ and role == Role.SRC:
        return kind == Kind.MEM and integer
    return floating if is_float_op(op, flags) else integer


def descriptor_layout(params):
    """A descriptor register: what the vector unit keeps of each operand."""
    return data.StructLayout({
        "kind": 3,
        "dtype": 2,
        "base": 16,          # byte address (MEM) or accumulator index (ACC)
        "length": 16,
        "stride": 16,        # MEM: signed byte stride; FIN/FOUT: the color
    })



class Counter(enum.IntEnum):
    """Performance counters and status, read by ``CSRR`` (and by the testbenches)."""
    CYCLES = 0               # cycles since reset while the core is enabled and not halted
    BUSY = 1                 # cycles in which an instruction completed or a vector beat ran
    SRAM_READS = 2           # data SRAM bytes read (vector operands, tables, loads)
    SRAM_WRITES = 3          # data SRAM bytes written
    WAVELETS_IN = 4          # wavelets taken from the fabric
    WAVELETS_OUT = 5         # wavelets sent to the fabric
    ZERO_SKIPS = 6           # VMACS scalars that were zero and cost no datapath cycle
    FAULTS = 7               # faults taken
    LOADED = 8               # bytes written by the front-door loader (rtl.wavelet.LoaderTag)


COUNTERS = len(Counter)


class Fault(enum.IntEnum):
    """Why the core stopped with its fault flag set (``fault_cause``)."""
    NONE = 0
    ILLEGAL = 1              # an opcode that does not exist (floating point without float
                             # lanes too), or a vector operand kind it forbids
    PC_RANGE = 2             # a fetch outside the code memory
    MEM_RANGE = 3            # a load, store or MEM descriptor outside data SRAM
    ACC_RANGE = 4            # an ACC descriptor outside the accumulator file
    COLOR = 5                # a color the fabric does not have
    SHAPE = 6                # vector operand lengths that do not fit together
    TYPE = 7                 # an operand of an element type its operation does not take


def sign_extend(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def encode(op, a=0, b=0, c=0, imm=0):
    """The instruction word.  ``imm`` may be negative; it must fit in 14 bits
    (signed or unsigned as the opcode's format says).  Raises ``ValueError``."""
    op = Op(op)
    for name, value in (("a", a), ("b", b), ("c", c)):
        if not 0 <= value < 16:
            raise ValueError(f"{op.name}: field {name}={value} does not fit in 4 bits")
    if OPS[op].signed_imm:
        if not -(1 << (IMM_BITS - 1)) <= imm < (1 << (IMM_BITS - 1)):
            raise ValueError(f"{op.name}: immediate {imm} does not fit in {IMM_BITS} signed bits")
    elif not 0 <= imm < (1 << IMM_BITS):
        raise ValueError(f"{op.name}: immediate {imm} does not fit in {IMM_BITS} unsigned bits")
    return (int(op) << 26) | (a << 22) | (b << 18) | (c << 14) | (imm & ((1 << IMM_BITS) - 1))


def decode(word):
    """``(opcode number, a, b, c, imm)``; imm is sign-extended for signed formats.
    The opcode number may be one that :class:`Op` does not have (illegal)."""
    opcode = word >> 26 & 0x3F
    a, b, c, imm = word >> 22 & 0xF, word >> 18 & 0xF, word >> 14 & 0xF, word & 0x3FFF
    op = Op(opcode) if opcode in Op._value2member_map_ else None
    if op is not None and OPS[op].signed_imm:
        imm = sign_extend(imm, IMM_BITS)
    return opcode, a, b, c, imm
