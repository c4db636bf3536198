"""The assembler against rtl/isa.py: fields, labels, li, data, errors, limits, round trips."""

import os
import random

import pytest

from host.asm import AsmError, Builder, assemble, disassemble
from rtl.isa import (COUNTERS, IMM_BITS, OPS, REGISTERS, Counter, Dtype, Format, Op, VFlag, decode,
                     encode)
from rtl.params import Params, preset
from tb.random_words import random_word

TEST = preset("test")            # 256 instructions, 3072 data bytes, 4 colors
DEFAULT = preset("default")      # 1024 instructions, 8 colors
LARGEST = Params(colors=32, sram_bytes=1 << 17, code_bytes=1 << 16)   # 16384 instructions
MASK = 0xFFFFFFFF


def fields(word):
    opcode, a, b, c, imm = decode(word)
    return Op(opcode), a, b, c, imm


# (source line, at instruction index 2, and the fields rtl.isa.decode must give back)
ENCODINGS = [
    (Format.NONE, "halt", (Op.HALT, 0, 0, 0, 0)),
    (Format.NONE, "TEXIT", (Op.TEXIT, 0, 0, 0, 0)),
    (Format.R, "add r1, r2, r3", (Op.ADD, 1, 2, 3, 0)),
    (Format.R, "SLTU R15, r0, r9", (Op.SLTU, 15, 0, 9, 0)),
    (Format.R, "and r4, r5, r6", (Op.AND, 4, 5, 6, 0)),
    (Format.I, "addi r1, r2, -5", (Op.ADDI, 1, 2, 0, -5)),
    (Format.I, "andi r3, r4, 0x1fff", (Op.ANDI, 3, 4, 0, 0x1FFF)),
    (Format.I, "slti r3, r4, -8192", (Op.SLTI, 3, 4, 0, -8192)),
    (Format.I, "srai r4, r5, 31", (Op.SRAI, 4, 5, 0, 31)),
    (Format.U, "lui r1, 0x3ffff", (Op.LUI, 1, 0, 0xF, 0x3FFF)),
    (Format.U, "lui r2, 0x24001", (Op.LUI, 2, 0, 9, 1)),
    (Format.LOAD, "ld r1, 8(r2)", (Op.LD, 1, 2, 0, 8)),
    (Format.LOAD, "ldb r1, -1(r2)", (Op.LDB, 1, 2, 0, -1)),
    (Format.LOAD, "ld r7, (r3)", (Op.LD, 7, 3, 0, 0)),
    (Format.STORE, "st r3, 8(r2)", (Op.ST, 0, 2, 3, 8)),
    (Format.STORE, "stb r4, -8192(r5)", (Op.STB, 0, 5, 4, -8192)),
    (Format.BRANCH, "beq r1, r2, @5", (Op.BEQ, 0, 1, 2, 3)),
    (Format.BRANCH, "bge r3, r4, @0", (Op.BGE, 0, 3, 4, -2)),
    (Format.LOOP, "bdec r3, @0", (Op.BDEC, 3, 0, 0, -2)),
    (Format.JUMP, "jal r15, @7", (Op.JAL, 15, 0, 0, 7)),
    (Format.JR, "jr r15", (Op.JR, 0, 15, 0, 0)),
    (Format.CSR, "csrr r1, cycles", (Op.CSRR, 1, 0, 0, Counter.CYCLES)),
    (Format.CSR, "csrr r2, FAULTS", (Op.CSRR, 2, 0, 0, Counter.FAULTS)),
    (Format.CSR, "csrr r2, 3", (Op.CSRR, 2, 0, 0, 3)),
    (Format.RECV, "recv r1, 3", (Op.RECV, 1, 0, 0, 3)),
    (Format.SEND, "send r2, 3", (Op.SEND, 0, 0, 2, 3)),
    (Format.SEND, "send r2, 1, CTRL", (Op.SEND, 0, 0, 2, 1 | 1 << 5)),
    (Format.TASK, "task 1, @9", (Op.TASK, 1, 0, 0, 9)),
    (Format.TBIND, "tbind 1, 2", (Op.TBIND, 1, 0, 0, 2)),
    (Format.T, "tact 1", (Op.TACT, 1, 0, 0, 0)),
    (Format.T, "tblock 7", (Op.TBLOCK, 7, 0, 0, 0)),
    (Format.T, "tunblock 2", (Op.TUNBLOCK, 2, 0, 0, 0)),
    (Format.SLOT, "wait 1", (Op.WAIT, 1, 0, 0, 0)),
    (Format.DMEM, "dmem d0, r1, r2, -1", (Op.DMEM, 0, 1, 2, 0xFFF)),
    (Format.DMEM, "dmem d0, r1, r2, -2048, bf16", (Op.DMEM, 0, 1, 2, 0x800 | 2 << 12)),
    (Format.DMEM, "dmem d3, r1, r2, 2, FP16", (Op.DMEM, 3, 1, 2, 2 | 1 << 12)),
    (Format.DACC, "dacc d1, r1, r2", (Op.DACC, 1, 1, 2, 0)),
    (Format.DFAB, "dfin d2, r3, 2", (Op.DFIN, 2, 0, 3, 2)),
    (Format.DFAB, "dfin d2, r3, 3, fp32", (Op.DFIN, 2, 0, 3, 3 | 3 << 12)),
    (Format.DFAB, "dfout d7, r4, 1", (Op.DFOUT, 7, 0, 4, 1)),
    (Format.DFAB, "dfout d7, r4, 1, bf16", (Op.DFOUT, 7, 0, 4, 1 | 2 << 12)),
    (Format.V, "vadd d0, d1, d2", (Op.VADD, 0, 1, 2, 0)),
    (Format.V, "vadd d0, d1, r5", (Op.VADD, 0, 1, 5, VFlag.SCALAR)),
    (Format.V, "vmov d3, d4", (Op.VMOV, 3, 4, 0, 0)),
    (Format.V, "vqnt d0, d1, shift=7, wide, async, slot=1",
     (Op.VQNT, 0, 1, 0, 7 | VFlag.WIDE | VFlag.ASYNC | VFlag.SLOT1)),
    (Format.V, "vqnt d5, d6, slot=1, shift=0x1f", (Op.VQNT, 5, 6, 0, 31 | VFlag.SLOT1)),
    (Format.V, "vtbl d0, d1, d2, shift=3", (Op.VTBL, 0, 1, 2, 3)),
    (Format.V, "vmacs d0, d1, d2, slot=0, async", (Op.VMACS, 0, 1, 2, VFlag.ASYNC)),
    (Format.V, "vmac d0, d1, d2, float, slot=1", (Op.VMAC, 0, 1, 2, VFlag.FLOAT | VFlag.SLOT1)),
    (Format.V, "vitof d0, d1", (Op.VITOF, 0, 1, 0, 0)),
    (Format.V, "vdeq d0, d1, r3", (Op.VDEQ, 0, 1, 3, VFlag.SCALAR)),
    (Format.VRED, "vsum r1, d0", (Op.VSUM, 1, 0, 0, 0)),
    (Format.VRED, "vrmax r1, d0, float", (Op.VSUM + 1, 1, 0, 0, VFlag.FLOAT)),
    (Format.VRED, "vargmax r15, d7", (Op.VARGMAX, 15, 7, 0, 0)),
]


def test_the_encoding_cases_cover_every_format():
    assert {fmt for fmt, _, _ in ENCODINGS} == set(Format)


@pytest.mark.parametrize("fmt, line, expected", ENCODINGS, ids=[line for _, line, _ in ENCODINGS])
def test_each_format_fills_the_fields_rtl_isa_decodes(fmt, line, expected):
    program = assemble(f"nop\nnop\n{line}\n", TEST)
    assert len(program.code) == 3
    assert OPS[expected[0]].format == fmt
    assert fields(program.code[2]) == expected


def test_mnemonics_registers_and_comments_in_any_form():
    text = """
        ; a comment
        # another
    top:    ADD R1, r2, r3      ; trailing comment
            add\tr1,r2,r3       # tabs and no spaces
    x: y:   Nop
    """
    program = assemble(text, TEST)
    assert program.code == [encode(Op.ADD, 1, 2, 3)] * 2 + [encode(Op.NOP)]
    assert program.labels == {"top": 0, "x": 2, "y": 2}


def test_labels_forward_and_backward():
    program = assemble("""
    start:  addi r1, r0, 3
    loop:   addi r1, r1, -1
            bne  r1, r0, loop       ; back one
            beq  r0, r0, done       ; forward three
            jal  r15, start         ; absolute
            task 2, done            ; absolute
    done:   bdec r1, loop
            jal  r0, @6
    """, TEST)
    assert program.labels == {"start": 0, "loop": 1, "done": 6}
    assert fields(program.code[2]) == (Op.BNE, 0, 1, 0, -1)
    assert fields(program.code[3]) == (Op.BEQ, 0, 0, 0, 3)
    assert fields(program.code[4]) == (Op.JAL, 15, 0, 0, 0)
    assert fields(program.code[5]) == (Op.TASK, 2, 0, 0, 6)
    assert fields(program.code[6]) == (Op.BDEC, 1, 0, 0, -5)
    assert fields(program.code[7]) == (Op.JAL, 0, 0, 0, 6)


def run_li(words):
    """The register li loads, by the ISA's semantics of LUI and ADDI (r0 reads as 0)."""
    regs = [0] * REGISTERS
    for word in words:
        op, a, b, c, imm = fields(word)
        if op == Op.LUI:
            regs[a] = ((c << IMM_BITS | imm) << IMM_BITS) & MASK
        elif op == Op.ADDI:          # decode sign-extends the immediate of ADDI
            regs[a] = (regs[b] + imm) & MASK
        else:
            raise AssertionError(f"li emitted {op.name}")
        regs[0] = 0
    return regs


@pytest.mark.parametrize("value", [0, 5, -1, 8191, -8192, 8192, -8193, 0x2000, 123456, -123456,
                                   0x3FFF, 0x12345FFF, 0x7FFFFFFF, 0x80000000, -0x80000000,
                                   0x80001FFF, 0x80002000, 0xFFFFFFFF, 0xFFFFDFFF])
def test_li_loads_any_32_bit_value(value):
    words = assemble(f"li r7, {value}", TEST).code
    fits = -8192 <= (value & MASK) - ((value & MASK) >> 31 << 32) <= 8191
    assert len(words) == (1 if fits else 2)
    assert run_li(words)[7] == value & MASK


@pytest.mark.parametrize("value", [-0x80000001, 0x100000000])
def test_li_refuses_values_beyond_32_bits(value):
    with pytest.raises(AsmError, match=r"line 1: value .* out of range -2147483648\.\.4294967295"):
        assemble(f"li r1, {value}", TEST)


def test_data_directives_and_the_data_image():
    program = assemble("""
    .equ  BASE, 0x10
            li   r1, table + 2      ; data labels are numbers, even before their definition
            li   r2, far
    .data BASE
    table:  .byte 1, -1, 255, -128
            .word 0xdeadbeef, -2
    gap:    .zero 3
    .data 0x40
    far:    .byte BASE
    .code
            halt
    """, TEST)
    assert program.labels == {"table": 0x10, "gap": 0x1C, "far": 0x40}
    assert program.data == {
        0x10: bytes([1, 0xFF, 0xFF, 0x80, 0xEF, 0xBE, 0xAD, 0xDE, 0xFE, 0xFF, 0xFF, 0xFF, 0, 0, 0]),
        0x40: bytes([0x10]),
    }
    assert run_li(program.code[:1])[1] == 0x12 and run_li(program.code[1:2])[2] == 0x40
    assert fields(program.code[2])[0] == Op.HALT
    image = program.data_image(TEST)
    assert len(image) == TEST.data_bytes == 3072
    assert image[0x10:0x1F] == program.data[0x10] and image[0x40] == 0x10
    assert image.count(0) == len(image) - 13      # the other bytes, and the .zero, are zero


def test_data_segments_are_contiguous_runs():
    program = assemble(".data 4\n.byte 1\n.data 5\n.byte 2\n.data 0\n.word 7", TEST)
    assert program.data == {0: bytes([7, 0, 0, 0, 1, 2])}


ERRORS = [
    ("nop\nfooo r1", 2, "unknown instruction 'fooo'"),
    ("add r1, r2, r16", 1, "bad register 'r16' (r0..r15)"),
    ("add r1, x, r2", 1, "expected a register (r0..r15), not 'x'"),
    ("add r1, r2", 1, "'add' takes 3 operands (register, register, register), not 2"),
    ("halt r1", 1, "'halt' takes 0 operands (no operands), not 1"),
    ("add r1, , r2", 1, "empty operand"),
    ("addi r1, r2, 8192", 1, "immediate 8192 out of range -8192..8191"),
    ("\nslli r1, r2, 32", 2, "immediate 32 out of range 0..31"),
    ("lui r1, 0x40000", 1, "immediate 262144 out of range 0..262143"),
    ("ld r1, 8192(r2)", 1, "offset 8192 out of range -8192..8191"),
    ("ld r1, 8[r2]", 1, "expected offset(register), not '8[r2]'"),
    ("nop\n\nbeq r1, r2, nowhere", 3, "unknown label 'nowhere'"),
    ("beq r1, r2, 3", 1, "bad target '3' (a label or @N)"),
    ("a: nop\nA: nop\na: nop", 3, "duplicate label 'a' (first on line 1)"),
    ("1st: nop", 1, "bad label name '1st'"),
    ("jal r15, @256", 1, "target 256 is outside the code memory (0..255)"),
    ("bdec r1, @-1", 1, "target -1 is outside the code memory (0..255)"),
    (".data 0\nt: .byte 1\n.code\nbeq r0, r0, t", 4, "'t' is a data label, not an instruction"),
    ("vqnt d0, d1, fast", 1, "bad flag 'fast' (vqnt takes shift=N, wide, float, async, slot=N)"),
    ("vqnt d0, d1, shift", 1, "bad flag 'shift'"),
    ("vqnt d0, d1, wide=1", 1, "bad flag 'wide=1'"),
    ("vqnt d0, d1, wide, WIDE", 1, "flag 'wide' given twice"),
    ("vqnt d0, d1, shift=32", 1, "shift 32 out of range 0..31"),
    ("vqnt d0, d1, slot=2", 1, "slot 2 out of range 0..1"),
    ("vadd d0, d8, d1", 1, "bad descriptor register 'd8' (d0..d7)"),
    ("vadd d0, d1, x3", 1, "expected a descriptor or register (d0..d7), not 'x3'"),
    ("vadd d0, d1", 1, "'vadd' takes 3 operands (descriptor, descriptor, descriptor or register"),
    ("send r1, 1, async", 1, "bad flag 'async' (send takes ctrl)"),
    ("add r1, r2, r3, wide", 1, "'add' takes 3 operands"),
    ("send r1, 4", 1, "color 4 out of range 0..3"),
    ("dfin d0, r1, -1", 1, "color -1 out of range 0..3"),
    ("dmem d0, r1, r2, 2048", 1, "stride 2048 out of range -2048..2047"),
    ("dmem d0, r1, r2, 2, fp32", 1, "bad flag 'fp32' (dmem takes fp16, bf16)"),
    ("dmem d0, r1, r2, 2, fp16, bf16", 1, "more than one element type"),
    ("dfin d0, r1, 1, fp16, fp16", 1, "flag 'fp16' given twice"),
    ("vqnt d0, d1, float", 1, "vqnt has no floating-point form"),
    ("dmem d1, r1, r2, 1\ndacc d0, r1, r2\nnop\nvadd d0, d1, d0, float", 4,
     "vadd float: the first source d1 is int MEM (set on line 1), which a floating-point vadd "
     "does not take"),
    ("dmem d1, r1, r2, 2, bf16\ndacc d0, r1, r2\nvmax d1, d0, d0", 3,
     "vmax: the destination d1 is bf16 MEM (set on line 1), which an integer vmax"),
    ("dfout d2, r1, 1, fp16\ndacc d0, r1, r2\nvitof d2, d0", 3,
     "vitof: the destination d2 is fp16 FOUT (set on line 1)"),
    ("dmem d3, r1, r2, 2, fp16\nvsum r1, d3", 2, "the first source d3 is fp16 MEM"),
    ("tact 8", 1, "task 8 out of range 0..7"),
    ("wait 2", 1, "slot 2 out of range 0..1"),
    ("csrr r1, temperature", 1, "unknown counter 'temperature' (counters: cycles, busy"),
    (f"csrr r1, {COUNTERS}", 1, f"counter {COUNTERS} out of range 0..{COUNTERS - 1}"),
    ("li r1, bogus", 1, "unknown symbol 'bogus'"),
    ("li r1, here\nhere: nop", 1, "'here' is a code label; only .equ constants and data labels"),
    ("addi r1, r2, 12z", 1, "bad number '12z'"),
    ("addi r1, r2, 1 2", 1, "bad number '1 2'"),
    (".equ X, Y\n.equ Y, 1", 1, "symbol 'Y' is not defined above this line"),
    (".equ X, 1\n.equ X, 2", 2, "duplicate label 'X' (first on line 1)"),
    (".byte 1", 1, ".byte outside a .data section"),
    (".data 0\n.byte 256", 2, ".byte value 256 out of range -128..255"),
    (".data 0\n.word 0x100000000", 2, ".word value 4294967296 out of range"),
    (".data 0\n.zero -1", 2, ".zero takes a size of 0 or more bytes, not -1"),
    (".data 0\nnop", 2, "'nop' in a .data section (.code switches back)"),
    (".data 0\n.word 1\n.data 2\n.byte 1", 4,
     "data at 0x2 overlaps the data up to 0x3 from line 2"),
    (".data 3072", 1, ".data address 0xc00 is outside the data SRAM (0x0..0xbff)"),
    (".frob 1", 1, "unknown directive '.frob'"),
    (".equ X", 1, ".equ takes 2 operands, not 1"),
    (".data 0\n.byte", 2, ".byte takes one or more operands, not 0"),
    (".code 1", 1, ".code takes 0 operands, not 1"),
    (".inst 0x100000000", 1, "word 4294967296 out of range 0..4294967295"),
]


@pytest.mark.parametrize("text, line, message", ERRORS, ids=[m for _, _, m in ERRORS])
def test_errors_name_the_line_and_the_problem(text, line, message):
    with pytest.raises(AsmError) as caught:
        assemble(text, TEST)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.line == line
    assert str(error) == f"line {line}: {error.message}"
    assert message in error.message
    assert "\n" not in str(error)


def test_types_are_checked_against_the_last_setting_above():
    """A descriptor set again with another type changes what the operations below take;
    one never set is not checked (the core checks when it runs)."""
    text = """
        dmem d1, r1, r2, 1
        dmem d1, r1, r2, 2, fp16
        dacc d0, r1, r2
        vadd d0, d1, d0, float
        vmac d0, d1, d6, float
    """
    program = assemble(text, TEST)
    assert fields(program.code[3]) == (Op.VADD, 0, 1, 0, VFlag.FLOAT)
    with pytest.raises(AsmError, match="a MEM descriptor holds int8, fp16 or bf16"):
        Builder(TEST).dmem(0, 1, 2, 4, dtype=Dtype.FP32)
    assert fields(program.code[4]) == (Op.VMAC, 0, 1, 6, VFlag.FLOAT)


def test_disassembly_writes_a_mistyped_operation_as_inst():
    words = [encode(Op.DMEM, a=1, imm=1), encode(Op.VMOV, a=1, b=1, imm=VFlag.FLOAT)]
    text = disassemble(words)
    assert text.splitlines() == ["    dmem     d1, r0, r0, 1", f"    .inst {words[1]:#010x}"]
    assert assemble(text, TEST).code == words


def test_a_branch_reaches_8191_instructions():
    assemble("beq r0, r0, @8191", LARGEST)
    with pytest.raises(AsmError, match=r"^line 1: target is 8192 instructions away; "
                                       r"a branch reaches -8192\.\.8191$"):
        assemble("beq r0, r0, @8192", LARGEST)


def test_a_program_must_fit_the_code_memory():
    assert len(assemble("nop\n" * 256, TEST).code) == 256
    with pytest.raises(AsmError) as caught:
        assemble("nop\n" * 255 + "li r1, 0x12345678\n", TEST)
    assert caught.value.line is None
    assert str(caught.value) == ("program is 257 instructions (1028 bytes); "
                                 "the code memory holds 256 (1024 bytes)")


def test_data_must_fit_the_data_sram():
    program = assemble(".data 3068\n.word -1", TEST)
    assert program.data_image(TEST)[-4:] == b"\xff\xff\xff\xff"
    with pytest.raises(AsmError) as caught:
        assemble("nop\n.data 3068\n.byte 1, 2, 3\n.byte 4, 5", TEST)
    assert caught.value.line == 4
    assert caught.value.message == ("data at 0xbff..0xc00 is outside the data SRAM "
                                    "(0x0..0xbff, 3072 bytes)")
    smaller = TEST.replace(sram_bytes=2048)                # 1024 data bytes
    with pytest.raises(AsmError, match="data at 0xbfc..0xbff is outside the data SRAM"):
        program.data_image(smaller)


EVERY_OP = """
    .equ  N, 4
    entry:  li    r1, 0x12345678
            add   r1, r2, r3
            sub   r1, r2, r3
            and   r1, r2, r3
            or    r1, r2, r3
            xor   r1, r2, r3
            sll   r1, r2, r3
            srl   r1, r2, r3
            sra   r1, r2, r3
            mul   r1, r2, r3
            slt   r1, r2, r3
            sltu  r1, r2, r3
            andi  r4, r5, -8192
            slli  r4, r5, 31
            srli  r4, r5, 1
            srai  r4, r5, 0
            slti  r4, r5, 8191
    back:   ld    r6, table(r0)
            ldb   r6, -1(r7)
            st    r6, 4(r7)
            stb   r6, (r7)
            beq   r1, r2, fwd
            bne   r1, r2, back
            blt   r1, r2, @0
            bge   r1, r2, fwd
            bdec  r3, back
            jal   r15, handler
            jr    r15
            csrr  r8, zero_skips
            recv  r9, 2
            send  r9, 3, ctrl
            send  r9, 0
    fwd:    task  1, handler
            tbind 1, N - 2
            tact  1
            tblock 1
            tunblock 1
            wait  1
            dmem  d0, r1, r2, -3
            dacc  d1, r1, r2
            dfin  d2, r3, 1
            dfout d3, r3, 2
            vmov  d4, d5, async
            vadd  d0, d1, d2
            vsub  d0, d1, r2
            vmul  d0, d1, d2, slot=1
            vmax  d0, d1, d2
            vmin  d0, d1, d2
            vqnt  d0, d1, shift=7, wide, async, slot=1
            vtbl  d0, d1, d2, shift=4
            vmac  d1, d0, d2
            vmacs d1, d0, d2
            vsum  r1, d0
            vrmax r1, d0
            vargmax r1, d0
            dmem  d4, r1, r2, 2, fp16
            dfout d5, r3, 2, fp32
            vadd  d4, d4, r5, float
            vitof d5, d0
            vftoi d1, d4
            vdeq  d4, d0, r6
            vargmax r1, d4, float
            .inst 0xfc000000
    handler: texit
            nop
            halt
    .data 0x20
    table:  .word 1, 2, 3
"""


def test_disassembly_of_every_opcode_assembles_to_the_same_words():
    program = assemble(EVERY_OP, TEST)
    assert {decode(word)[0] for word in program.code} == {int(op) for op in Op} | {0x3F}
    text = disassemble(program.code)
    assert assemble(text, TEST).code == program.code
    assert disassemble(assemble(text, TEST).code) == text
    lines = text.splitlines()
    for label in ("L0:", "L18:", "L33:", f"L{program.labels['handler']}:"):
        assert label in lines
    assert "    .inst 0xfc000000" in lines
    assert "vqnt d0, d1, shift=7, wide, async, slot=1" in " ".join(text.split())
    assert "send r9, 3, ctrl" in " ".join(text.split())
    assert "csrr r8, zero_skips" in " ".join(text.split())


def test_disassembly_names_targets_outside_the_program_by_index():
    words = [encode(Op.JAL, 15, imm=40), encode(Op.BEQ, b=1, c=2, imm=-1)]
    assert disassemble(words).split() == ["L0:", "jal", "r15,", "@40", "beq", "r1,", "r2,", "L0"]


SEEDS = [int(os.environ["TESSERA_SEED"])] if "TESSERA_SEED" in os.environ else [1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_valid_words_round_trip(seed):
    rng = random.Random(seed)
    illegal = [0] + list(range(max(Op) + 1, 64))
    words, illegal_count = [], 0
    for pc in range(DEFAULT.code_words):
        if rng.random() < 0.05:
            words.append(rng.choice(illegal) << 26 | rng.getrandbits(26))
            illegal_count += 1
        else:
            words.append(random_word(rng, rng.choice(list(Op)), pc, DEFAULT))
    text = disassemble(words)
    assert text.count(".inst") == illegal_count, f"seed {seed}: a valid word written as .inst"
    again = assemble(text, DEFAULT).code
    first = next((pc for pc, (x, y) in enumerate(zip(words, again)) if x != y), None)
    assert again == words, (f"seed {seed}: word {first} {words[first]:#010x} came back as "
                            f"{again[first]:#010x}" if first is not None else f"seed {seed}")


@pytest.mark.parametrize("seed", SEEDS)
def test_any_word_round_trips_through_disassembly(seed):
    """Non-canonical words (unused fields set, unknown flags) come back too, as .inst."""
    rng = random.Random(seed)
    words = [rng.getrandbits(32) for _ in range(2000)]
    words += [encode(Op.NOP, a=1), encode(Op.SEND, c=1, imm=1 << 6), encode(Op.VMOV, c=2)]
    text = disassemble(words)
    assert text.splitlines()[-3:] == [f"    .inst {word:#010x}" for word in words[-3:]]
    assert assemble(text, LARGEST).code == words, f"seed {seed}"


def test_builder_and_text_give_identical_programs():
    text = assemble("""
    .equ K, 3
            li    r1, table
            li    r2, -100000
    loop:   and   r3, r1, r2
            ld    r4, 8(r1)
            st    r4, -4(r1)
            bdec  r2, loop
            send  r4, 1, ctrl
            csrr  r5, wavelets_in
            vadd  d0, d1, r5
            vqnt  d0, d1, shift=7, wide, async, slot=1
            task  K, done
            jal   r15, @1
    done:   halt
    .data 0x80
    table:  .byte 1, 2
            .word 0x01020304
    """, TEST)
    b = Builder(TEST)
    b.li(1, 0x80)
    b.li(2, -100000)
    b.label("loop")
    b.and_(3, 1, 2)
    b.ld(4, 1, 8)
    b.st(4, 1, -4)
    b.bdec(2, "loop")
    b.send(4, 1, ctrl=True)
    b.csrr(5, Counter.WAVELETS_IN)
    b.vadd(0, 1, 5, scalar=True)
    b.vqnt(0, 1, shift=7, wide=True, async_=True, slot=1)
    b.task(3, "done")
    b.jal(15, 1)
    b.label("done")
    b.halt()
    b.label("table", 0x80)
    b.data(0x80, bytes([1, 2]) + (0x01020304).to_bytes(4, "little"))
    built = b.build()
    assert built.words() == text.code and built.code == text.code
    assert built.data == text.data == {0x80: bytes([1, 2, 4, 3, 2, 1])}
    assert built.labels == text.labels == {"loop": 3, "done": 13, "table": 0x80}


def test_builder_errors_have_no_line():
    b = Builder(TEST)
    with pytest.raises(AsmError) as caught:
        b.addi(1, 0, 9000)
    assert caught.value.line is None
    assert str(caught.value) == "immediate 9000 out of range -8192..8191"
    with pytest.raises(AsmError, match="^register must be an integer, not 'r1'$"):
        b.add("r1", 2, 3)
    with pytest.raises(AsmError, match="^vmov takes 2 operands$"):
        b.vmov(0, 1, 2)
    with pytest.raises(AsmError, match="^duplicate label 'x'$"):
        b.label("x")
        b.label("x", 0x10)
    b.beq(0, 0, "missing")
    with pytest.raises(AsmError, match="^unknown label 'missing'$"):
        b.build()
