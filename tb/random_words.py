"""Random valid instruction words: every field one the assembler would write.

:func:`random_word` draws a word of an opcode from :mod:`rtl.isa`'s formats, fields
and flags, so that :func:`host.asm.disassemble` must write it as that instruction
(not ``.inst``) and :func:`host.asm.assemble` must give it back.  Vector operands
come from :data:`TYPED`'s descriptor registers, whose types are fixed, so that
any sequence of these words type-checks.
"""

from rtl.isa import (COUNTERS, IMM_BITS, OPS, REGISTERS, SLOTS, TASKS, UNARY, Dtype, Format,
                     Kind, Op, Role, VFlag, accepts, descriptor_imm, encode)

__all__ = ["random_word", "TYPED"]

#: The descriptor registers of the random words: each is set only with this kind and type,
#: so that a vector word can pick operands its operation takes.
TYPED = {0: (Kind.MEM, Dtype.INT), 1: (Kind.ACC, Dtype.INT), 2: (Kind.FIN, Dtype.INT),
         3: (Kind.FOUT, Dtype.INT), 4: (Kind.MEM, Dtype.FP16), 5: (Kind.MEM, Dtype.BF16),
         6: (Kind.FIN, Dtype.FP32), 7: (Kind.FOUT, Dtype.FP32)}


def random_word(rng, op, pc, params):
    """A random word for ``op`` with every field the format does not use zero."""
    fmt = OPS[op].format
    reg = lambda: rng.randrange(REGISTERS)  # noqa: E731
    color, task = (lambda: rng.randrange(params.colors)), (lambda: rng.randrange(TASKS))
    target, signed = (lambda: rng.randrange(params.code_words)), (lambda: rng.randint(-8192, 8191))
    unary = op in UNARY
    make = {
        Format.NONE: lambda: {},
        Format.R: lambda: dict(a=reg(), b=reg(), c=reg()),
        Format.I: lambda: dict(a=reg(), b=reg(), imm=rng.randrange(32)
                               if op in (Op.SLLI, Op.SRLI, Op.SRAI) else signed()),
        Format.U: lambda: dict(a=reg(), c=rng.randrange(16), imm=rng.randrange(1 << IMM_BITS)),
        Format.LOAD: lambda: dict(a=reg(), b=reg(), imm=signed()),
        Format.STORE: lambda: dict(b=reg(), c=reg(), imm=signed()),
        Format.BRANCH: lambda: dict(b=reg(), c=reg(), imm=target() - pc),
        Format.LOOP: lambda: dict(a=reg(), imm=target() - pc),
        Format.JUMP: lambda: dict(a=reg(), imm=target()),
        Format.JR: lambda: dict(b=reg()),
        Format.CSR: lambda: dict(a=reg(), imm=rng.randrange(COUNTERS)),
        Format.RECV: lambda: dict(a=reg(), imm=color()),
        Format.SEND: lambda: dict(c=reg(), imm=color() | rng.randrange(2) << 5),
        Format.TASK: lambda: dict(a=task(), imm=target()),
        Format.TBIND: lambda: dict(a=task(), imm=color()),
        Format.T: lambda: dict(a=task()),
        Format.SLOT: lambda: dict(a=rng.randrange(SLOTS)),
        Format.DMEM: lambda: dict(a=typed(Kind.MEM), b=reg(), c=reg(),
                                  imm=descriptor_imm(rng.randint(-2048, 2047),
                                                     TYPED[typed.last][1])),
        Format.DACC: lambda: dict(a=typed(Kind.ACC), b=reg(), c=reg()),
        Format.DFAB: lambda: dict(a=typed(Kind.FIN if op == Op.DFIN else Kind.FOUT), c=reg(),
                                  imm=descriptor_imm(color(), TYPED[typed.last][1])),
    }

    def typed(kind):
        """A descriptor register that TYPED gives ``kind`` (remembered for its type)."""
        typed.last = rng.choice([d for d, (k, _) in TYPED.items() if k == kind])
        return typed.last

    def operand(role, flags):
        """A descriptor register whose TYPED type ``op`` takes as ``role``."""
        return rng.choice([d for d, (kind, dtype) in TYPED.items()
                           if accepts(op, flags, role, kind, dtype)])

    if fmt in (Format.V, Format.VRED):
        floating = op not in (Op.VQNT, Op.VTBL) and rng.random() < 0.5
        flags = (VFlag.FLOAT if floating else 0) | (0 if fmt == Format.VRED else (
            rng.randrange(32) | rng.choice([0, VFlag.WIDE]) | rng.choice([0, VFlag.ASYNC])
            | rng.choice([0, VFlag.SLOT1])))
        if fmt == Format.VRED:
            return encode(op, a=reg(), b=operand(Role.SRC, flags), imm=int(flags))
        scalar = not unary and rng.random() < 0.5
        flags |= VFlag.SCALAR if scalar else 0
        c = 0 if unary else reg() if scalar else operand(Role.SRC2, flags)
        return encode(op, a=operand(Role.DST, flags), b=operand(Role.SRC, flags), c=c,
                      imm=int(flags))
    return encode(op, **make[fmt]())
