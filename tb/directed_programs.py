"""Directed programs for the core: every instruction, every fault, two concurrent streams.

Each entry of :func:`directed_cases` is ``(name, Case, check)``; ``check(outcome)``
raises ``AssertionError`` when the outcome is wrong.  The expected values are
computed here, in plain Python and numpy, not by the ISS, so the same checks
hold the ISS (``tests/test_iss.py``) and the RTL (``tb/core_tb.py``) to
account; the RTL is also compared with the ISS to the bit and the cycle.
"""

import numpy as np

from host.asm import assemble
from rtl.isa import COUNTERS, DESCRIPTORS, SLOTS, TASKS, Counter, Fault, Op, encode
from sim.core_session import Case

__all__ = ["directed_cases"]

OUT = 0x200          # where programs store their results


def _word(outcome, index):
    """The signed 32-bit word a program stored at OUT + 4 * index."""
    raw = outcome.mem[OUT + 4 * index:OUT + 4 * index + 4]
    return int.from_bytes(raw, "little", signed=True)


def _words(outcome, count):
    return [_word(outcome, i) for i in range(count)]


def _expect(actual, expected, what):
    assert actual == expected, f"{what}: expected {expected}, got {actual}"


def _wrap(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _store_all(registers):
    return "\n".join(f"st r{r}, {OUT + 4 * i}(r0)" for i, r in enumerate(registers))


def _no_fault(outcome):
    _expect((outcome.halted, outcome.fault), (True, Fault.NONE), "halted without a fault")


def directed_cases(params):
    """The directed cases for ``params`` (any preset whose data SRAM holds 2 KiB)."""
    cases = []

    def case(name, source, check, **kwargs):
        program = assemble(source, params)
        data = bytearray(kwargs.pop("data", b""))
        for address, content in program.data.items():
            data.extend(bytes(max(0, address + len(content) - len(data))))
            data[address:address + len(content)] = content
        cases.append((name, Case(program.words(), bytes(data), **kwargs), check))

    # --- scalar arithmetic: every register-register and immediate operation ---
    a, b = 0x12345678, -7
    r_ops = {"add": a + b, "sub": a - b, "and": a & b, "or": a | b, "xor": a ^ b,
             "sll": a << (b & 31), "srl": (a & 0xFFFFFFFF) >> (b & 31), "sra": a >> (b & 31),
             "mul": a * b, "slt": int(a < b), "sltu": int(a < (b & 0xFFFFFFFF))}
    i_ops = {"addi": (a + -300, -300), "andi": (a & 0x0F0F, 0x0F0F), "slli": (a << 5, 5),
             "srli": (a >> 9, 9), "srai": (b >> 1, 1), "slti": (int(b < -6), -6)}
    lines = ["li r1, 0x12345678", "li r2, -7"]
    for n, name in enumerate(r_ops):
        lines += [f"{name} r3, r1, r2", f"st r3, {OUT + 4 * n}(r0)"]
    for n, (name, (_, imm)) in enumerate(i_ops.items(), len(r_ops)):
        source = "r2" if name in ("srai", "slti") else "r1"
        lines += [f"{name} r3, {source}, {imm}", f"st r3, {OUT + 4 * n}(r0)"]
    lines += ["lui r4, 0x2abcd", f"st r4, {OUT + 4 * 17}(r0)", "halt"]
    alu_expected = [_wrap(v) for v in r_ops.values()] + [_wrap(v) for v, _ in i_ops.values()] + [
        _wrap(0x2ABCD << 14)]

    def check_alu(outcome):
        _no_fault(outcome)
        _expect(_words(outcome, 18), alu_expected, "ALU results")
    case("scalar_alu", "\n".join(lines), check_alu)

    # --- memory: words and bytes, loads sign-extend ---
    def check_memory(outcome):
        _no_fault(outcome)
        _expect(_words(outcome, 3), [-2023406815, -127, 0x81], "loads")
        _expect(outcome.mem[0x300:0x306], bytes([0x44, 0x33, 0x22, 0x11, 0x81, 0]), "stores")
        _expect(outcome.counters[Counter.SRAM_READS], 4 + 1, "SRAM reads")
        _expect(outcome.counters[Counter.SRAM_WRITES], 4 * 3 + 4 + 1, "SRAM writes")
    case("memory", f"""
        ld r1, 0x100(r0)        ; 0x87654321
        ldb r2, 0x104(r0)       ; 0x81, sign-extended
        andi r3, r2, 0xff
        {_store_all([1, 2, 3])}
        li r4, 0x11223344
        st r4, 0x300(r0)
        stb r2, 0x304(r0)
        halt
        .data 0x100
        .word 0x87654321
        .byte 0x81
        """, check_memory)

    # --- control: branches both ways, a counted loop, a call and a return ---
    def check_control(outcome):
        _no_fault(outcome)
        _expect(_words(outcome, 3), [0b1111, 55, 42], "branches, loop sum, call")
    case("control", f"""
        li r1, 5
        li r2, -3
        beq r1, r1, eq_taken
        halt
    eq_taken:
        addi r5, r5, 1
        bne r1, r1, @0          ; not taken
        bne r1, r2, ne_taken
        halt
    ne_taken:
        addi r5, r5, 2
        blt r1, r2, @0          ; not taken: 5 < -3 is false
        blt r2, r1, lt_taken
        halt
    lt_taken:
        addi r5, r5, 4
        bge r2, r1, @0          ; not taken
        bge r1, r1, ge_taken
        halt
    ge_taken:
        addi r5, r5, 8
        li r3, 10               ; sum 10 + 9 + ... + 1 with BDEC
    loop:
        add r6, r6, r3
        bdec r3, loop
        jal r15, function
        {_store_all([5, 6, 7])}
        halt
    function:
        li r7, 42
        jr r15
        """, check_control)

    # --- counters and NOP: CSRR reads the counters as they were at the start of the cycle ---
    def check_counters(outcome):
        _no_fault(outcome)
        cycles_apart, busy_apart, zero = _words(outcome, 3)
        _expect((cycles_apart, busy_apart, zero), (3, 3, 0), "CSRR of cycles and busy")
        _expect(outcome.counters[Counter.CYCLES], outcome.cycles, "cycle counter")
    case("counters", f"""
        csrr r1, cycles
        csrr r3, busy
        nop
        csrr r2, cycles
        csrr r4, busy
        sub r5, r2, r1
        sub r6, r4, r3
        csrr r7, zero_skips
        {_store_all([5, 6, 7])}
        halt
        """, check_counters)

    # --- scalar fabric access: RECV and SEND (with a control wavelet) ---
    def check_fabric(outcome):
        _no_fault(outcome)
        _expect([(d, c, k) for _, d, c, k in outcome.sent],
                [(11, 2, 0), (21, 2, 0), (0xFFFFFFFF, 2, 1)], "sent wavelets")
        _expect((outcome.counters[Counter.WAVELETS_IN], outcome.counters[Counter.WAVELETS_OUT]),
                (3, 3), "wavelet counters")
    case("fabric_scalar", """
        li r3, 3
    again:
        recv r1, 1
        addi r1, r1, 1
        addi r3, r3, -1
        beq r3, r0, last
        send r1, 2
        beq r0, r0, again
    last:
        send r1, 2, ctrl
        halt
        """, check_fabric, wavelets=[(0, 10, 1), (5, 20, 1), (9, 0xFFFFFFFE, 1)], ready_seed=7)

    # --- tasks: activation order, blocking, data-triggered tasks, WAIT ---
    def check_tasks(outcome):
        _no_fault(outcome)
        # 1 first (the lowest activated), then 2 (unblocked by 1, and lower than 3), then 3;
        # 4 when its wavelet arrives.
        _expect(_words(outcome, 1), [0x1234], "task order")
    case("tasks", f"""
        task 1, one
        task 2, two
        task 3, three
        task 4, four
        tblock 2
        tact 2                  ; activated, but blocked until task 1 unblocks it
        tact 3
        tact 1
        tbind 4, 1              ; task 4 runs when a wavelet of color 1 waits
        texit
    one:
        slli r1, r1, 4
        addi r1, r1, 1
        tunblock 2
        texit
    three:
        slli r1, r1, 4
        addi r1, r1, 3
        texit
    two:
        slli r1, r1, 4
        addi r1, r1, 2
        texit
    four:
        recv r2, 1
        slli r1, r1, 4
        addi r1, r1, 4
        wait 0
        st r1, {OUT}(r0)
        halt
        """, check_tasks, wavelets=[(40, 5, 1)])

    # --- vector operations against numpy ---
    rng = np.random.default_rng(5)
    lanes = params.lanes
    n = lanes + 5                                      # a full beat and a partial one
    x = rng.integers(-128, 128, n)
    y = rng.integers(-128, 128, n)
    image = bytearray(0x800)
    image[0x400:0x400 + n] = x.astype(np.int8).tobytes()
    image[0x480:0x480 + n] = y.astype(np.int8).tobytes()
    elementwise = {"vadd": x + y, "vsub": x - y, "vmul": x * y, "vmax": np.maximum(x, y),
                   "vmin": np.minimum(x, y)}

    def check_elementwise(op, expected):
        def check(outcome):
            _no_fault(outcome)
            _expect(outcome.acc[:n], [int(v) for v in expected], f"{op} into ACC")
            _expect(outcome.mem[0x500:0x500 + n], bytes(int(v) & 0xFF for v in expected),
                    f"{op} into MEM (low 8 bits)")
        return check
    setup = f"""
        li r1, 0x400
        li r2, {n}
        dmem d1, r1, r2, 1
        li r1, 0x480
        dmem d2, r1, r2, 1
        dacc d0, r0, r2
        li r1, 0x500
        dmem d3, r1, r2, 1
    """
    for op, expected in elementwise.items():
        case(op, setup + f"{op} d0, d1, d2\n{op} d3, d1, d2, async, slot=1\nwait 1\nhalt",
             check_elementwise(op, expected), data=image)
    case("vadd_scalar", setup + "li r5, -100\nvadd d0, d1, r5\nvadd d3, d1, r5\nhalt",
         check_elementwise("vadd scalar", x - 100), data=image)
    case("vmov", setup + "vmov d0, d1\nvmov d3, d2\nhalt",
         lambda o: (_expect(o.acc[:n], [int(v) for v in x], "vmov to ACC"),
                    _expect(o.mem[0x500:0x500 + n], bytes(image[0x480:0x480 + n]),
                            "vmov to MEM")), data=image)

    big = [(1 << 20) + 12345, -(1 << 20) - 777, 300, -300, 127, -128, 65, -65, 0, 1, 2, 3]
    shift = 4

    def quantise(v, bits):
        r = (v + (1 << (shift - 1))) >> shift
        return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, r))
    case("vqnt", f"""
        li r2, {len(big)}
        dacc d1, r0, r2
        li r1, 16
        dacc d0, r1, r2
        li r1, 0x500
        dmem d3, r1, r2, 1
        vqnt d0, d1, shift={shift}, wide
        vqnt d3, d1, shift={shift}
        halt
        """, lambda o: (_expect(o.acc[16:16 + len(big)], [quantise(v, 16) for v in big],
                                "vqnt to int16"),
                        _expect(list(np.frombuffer(o.mem[0x500:0x500 + len(big)], np.int8)),
                                [quantise(v, 8) for v in big], "vqnt to int8")),
         acc=big)

    table = [int(v) for v in rng.integers(-3000, 3000, 9)]
    inputs = [-50, -1, 0, 5, 16, 17, 31, 100, 127, 128, 200, 1000]
    tshift = 4

    def lookup(v):
        i, f = v >> tshift, v & ((1 << tshift) - 1)
        if i < 0:
            return table[0]
        if i >= len(table) - 1:
            return table[-1]
        return table[i] + (((table[i + 1] - table[i]) * f) >> tshift)
    table_bytes = b"".join(v.to_bytes(2, "little", signed=True) for v in table)
    case("vtbl", f"""
        li r2, {len(inputs)}
        dacc d1, r0, r2
        li r1, 16
        dacc d0, r1, r2
        li r1, 0x600
        li r3, {len(table)}
        dmem d2, r1, r3, 1
        vtbl d0, d1, d2, shift={tshift}
        halt
        .data 0x600
        .byte {", ".join(str(b) for b in table_bytes)}
        """, lambda o: _expect(o.acc[16:16 + len(inputs)], [lookup(v) for v in inputs],
                               "vtbl with interpolation"), acc=inputs)

    def check_mac(outcome):
        _no_fault(outcome)
        _expect(outcome.acc[:n], [int(v) for v in 1000 + x * y], "vmac")
        _expect(outcome.acc[32:32 + n], [int(v) for v in -5 + x * 7], "vmacs by a register")
        _expect(outcome.counters[Counter.ZERO_SKIPS], 1, "a zero register scalar is skipped")
    case("vmac", setup + """
        vmac d0, d1, d2
        li r1, 32
        dacc d4, r1, r2
        li r5, 7
        vmacs d4, d1, r5
        vmacs d4, d1, r0          ; skipped: costs no beat
        halt
        """, check_mac, data=image, acc=[1000] * n + [0] * (32 - n) + [-5] * n)

    # Reductions, over memory with a negative stride and over the fabric.
    def check_reductions(outcome):
        _no_fault(outcome)
        _expect(_words(outcome, 6), [int(x.sum()), int(x.max()), int(np.argmax(x[::-1])),
                                     int(y[:5].sum()), int(y[:5].max()),
                                     int(np.argmax(y[:5]))], "reductions")
    case("reductions", f"""
        li r1, {0x400 + n - 1}
        li r2, {n}
        dmem d1, r1, r2, -1
        vsum r3, d1
        vrmax r4, d1
        vargmax r5, d1
        li r2, 5
        dfin d2, r2, 1
        vsum r6, d2
        dfin d2, r2, 2
        vrmax r7, d2
        dfin d2, r2, 3
        vargmax r8, d2
        {_store_all([3, 4, 5, 6, 7, 8])}
        halt
        """, check_reductions, data=image,
         wavelets=[(k, int(v) & 0xFFFFFFFF, c) for c in (1, 2, 3) for k, v in enumerate(y[:5])])

    # Fabric vectors: receive into memory, send from memory (DFIN, DFOUT).
    def check_stream(outcome):
        _no_fault(outcome)
        _expect(outcome.mem[0x500:0x500 + n], bytes(image[0x400:0x400 + n]), "received vector")
        _expect([(d, c) for _, d, c, _ in outcome.sent],
                [(int(v) & 0xFFFFFFFF, 2) for v in y], "sent vector")
    case("fabric_vectors", f"""
        li r2, {n}
        dfin d0, r2, 1
        li r1, 0x500
        dmem d1, r1, r2, 1
        vmov d1, d0
        li r1, 0x480
        dmem d2, r1, r2, 1
        dfout d3, r2, 2
        vmov d3, d2
        halt
        """, check_stream, data=image, ready_seed=11,
         wavelets=[(3 * k, int(v) & 0xFFFFFFFF, 1) for k, v in enumerate(x)])

    # The fused fabric operand: acc += W[:, j] * x_j for x_j streamed in, zeros skipped.
    # 20 zeros: the zero-skip counter carries out of its low part (16, rtl/core).
    rows, cols = 2 * lanes, 40
    weights = rng.integers(-128, 128, (rows, cols))
    xs = rng.integers(-128, 128, cols)
    xs[::2] = 0
    gemv_image = bytearray(0x800)
    gemv_image[:rows * cols] = weights.T.astype(np.int8).tobytes()

    def check_gemv(outcome):
        _no_fault(outcome)
        _expect(outcome.acc[:rows], [int(v) for v in weights @ xs], "W x")
        nonzero = int(np.count_nonzero(xs))
        _expect(outcome.counters[Counter.ZERO_SKIPS], cols - nonzero, "zero-skips")
        _expect(outcome.counters[Counter.SRAM_READS], rows * nonzero, "only nonzero columns read")
    case("vmacs_fabric", f"""
        li r2, {rows * cols}
        dmem d1, r0, r2, 1
        li r2, {rows}
        dacc d0, r0, r2
        li r2, {cols}
        dfin d2, r2, 0
        vmacs d0, d1, d2
        halt
        """, check_gemv, data=gemv_image,
         wavelets=[(0, int(v) & 0xFFFFFFFF, 0) for v in xs])

    # Two fabric streams into one core at once: slots take turns, neither starves.
    m = 24
    stream_a = rng.integers(-128, 128, m)
    stream_b = rng.integers(-128, 128, m)

    def check_streams(outcome):
        _no_fault(outcome)
        _expect(outcome.mem[0x500:0x500 + m], stream_a.astype(np.int8).tobytes(), "stream A")
        _expect(outcome.mem[0x580:0x580 + m], stream_b.astype(np.int8).tobytes(), "stream B")
        done_a, done_b = _words(outcome, 2)
        assert abs(done_a - done_b) <= 3, (f"one stream finished at cycle {done_a}, "
                                           f"the other at {done_b}: one was starved")
    case("two_streams", f"""
        li r2, {m}
        dfin d0, r2, 1
        li r1, 0x500
        dmem d1, r1, r2, 1
        dfin d2, r2, 2
        li r1, 0x580
        dmem d3, r1, r2, 1
        vmov d1, d0, async, slot=0
        vmov d3, d2, async, slot=1
        wait 0
        csrr r4, cycles
        wait 1
        csrr r5, cycles
        {_store_all([4, 5])}
        halt
        """, check_streams,
         wavelets=[(0, int(v) & 0xFFFFFFFF, c) for pair in zip(stream_a, stream_b)
                   for v, c in zip(pair, (1, 2))])

    # Vectors that end at the top of data SRAM and of the accumulators, from a high bank
    # (the last, and two and three below the top), through every read and write port: the
    # banks below the first would take the row past the last one (rtl/core/banks.py).
    top, acc_top = params.data_bytes, params.acc_words
    top_data = bytes(rng.integers(0, 256, top, dtype=np.uint8))
    top_acc = [int(v) for v in rng.integers(-300, 300, acc_top)]

    def int8(byte):
        return (byte ^ 0x80) - 0x80

    def check_top(outcome):
        _no_fault(outcome)
        data, acc = list(top_data[-3:]), top_acc[-3:]
        data[2] = acc[2] & 0xFF                          # vmov: mem <- acc, the last one
        acc[2] = 2 * int8(data[2])                       # vadd: acc <- mem + mem
        data[2] = 2 * acc[2] & 0xFF                      # vadd: mem <- acc + acc
        data[1:] = [v & 0xFF for v in acc[1:]]           # the last two: mem <- acc
        acc = [int8(b) for b in data]                    # the last three: acc <- mem
        _expect((list(outcome.mem[-3:]), outcome.acc[-3:]), (data, acc),
                "data's and the accumulators' last three")

    def last(length, mem, acc):
        """Descriptors ``mem`` and ``acc`` on the last ``length`` bytes and accumulators."""
        return (f"li r1, {length}\nli r2, {top - length}\ndmem d{mem}, r2, r1, 1\n"
                f"li r3, {acc_top - length}\ndacc d{acc}, r3, r1\n")
    case("vectors_at_the_top", last(1, 0, 1) + "vmov d0, d1\nvadd d1, d0, d0\nvadd d0, d1, d1\n"
         + last(2, 0, 1) + "vmov d0, d1\n" + last(3, 2, 3) + "vmov d3, d2\nhalt",
         check_top, data=top_data, acc=top_acc)

    # --- every fault: cause, PC, counter, and nothing after it runs ---
    faults = {
        "fault_illegal_opcode": ("nop\n.inst 0\nli r1, 1", Fault.ILLEGAL, 1),
        "fault_illegal_operands": ("li r2, 4\ndmem d0, r0, r2, 1\nvmac d0, d0, d0\nli r1, 1",
                                   Fault.ILLEGAL, 2),
        "fault_no_descriptor": ("vmov d0, d1\nli r1, 1", Fault.ILLEGAL, 0),
        "fault_pc_range": (f"li r2, {params.code_words}\njr r2", Fault.PC_RANGE,
                           params.code_words),
        "fault_load_range": (f"ld r3, {params.data_bytes - 3}(r0)\nli r1, 1", Fault.MEM_RANGE, 0),
        "fault_store_range": ("li r2, -1\nstb r2, 0(r2)\nli r1, 1", Fault.MEM_RANGE, 1),
        "fault_vector_range": (f"li r2, {params.data_bytes - 4}\nli r3, 3\n"
                               f"dmem d0, r2, r3, 2\nvmov d0, d0\nli r1, 1", Fault.MEM_RANGE, 3),
        "fault_table_range": (f"li r2, 4\ndacc d0, r0, r2\nli r3, {params.data_bytes - 6}\n"
                              f"dmem d1, r3, r2, 1\nvtbl d0, d0, d1\nli r1, 1", Fault.MEM_RANGE, 4),
        "fault_acc_range": (f"li r2, {params.acc_words - 2}\nli r3, 4\ndacc d0, r2, r3\n"
                            f"vmov d0, d0\nli r1, 1", Fault.ACC_RANGE, 3),
        "fault_color": (f".inst {encode(Op.RECV, 1, 0, 0, params.colors)}\nli r1, 1",
                        Fault.COLOR, 0),
        "fault_descriptor_color": (f"li r2, 4\n.inst {encode(Op.DFIN, 0, 0, 2, params.colors)}\n"
                                   f"dacc d1, r0, r2\nvmov d1, d0\nli r1, 1", Fault.COLOR, 3),
        "fault_shape": ("li r2, 4\nli r3, 5\ndacc d0, r0, r2\ndacc d1, r0, r3\nvadd d0, d1, d1\n"
                        "li r1, 1", Fault.SHAPE, 4),
        "fault_empty_vector": ("dacc d0, r0, r0\nvmov d0, d0\nli r1, 1", Fault.SHAPE, 1),
        "fault_counter": (f".inst {encode(Op.CSRR, 1, 0, 0, COUNTERS)}\nli r1, 1",
                          Fault.ILLEGAL, 0),
        "fault_send_color": (f".inst {encode(Op.SEND, 0, 2, 0, params.colors)}\nli r1, 1",
                             Fault.COLOR, 0),
        "fault_task": (f".inst {encode(Op.TACT, TASKS)}\nli r1, 1", Fault.ILLEGAL, 0),
        "fault_bind_color": (f".inst {encode(Op.TBIND, 1, 0, 0, params.colors)}\nli r1, 1",
                             Fault.COLOR, 0),
        "fault_slot": (f".inst {encode(Op.WAIT, SLOTS)}\nli r1, 1", Fault.ILLEGAL, 0),
        "fault_descriptor": (f".inst {encode(Op.DMEM, DESCRIPTORS, 0, 2, 1)}\nli r1, 1",
                             Fault.ILLEGAL, 0),
    }
    for name, (source, cause, pc) in faults.items():
        def check_fault(outcome, cause=cause, pc=pc, name=name):
            _expect((outcome.halted, outcome.fault, outcome.fault_pc), (True, cause, pc),
                    f"{name}: halted, cause, pc")
            _expect(outcome.counters[Counter.FAULTS], 1, "fault counter")
            _expect(outcome.regs[1], 0, "the instruction after the fault did not run")
        case(name, source, check_fault)
    return cases


def address_edge_cases(params):
    """``LD``/``LDB``/``ST``/``STB`` at the edges of the data SRAM, where its range check
    decides: the last word and byte, one past them, and addresses that wrap around 2^32
    (the ISS judges each, fault or not)."""
    top = params.data_bytes
    pairs = [(top - 4, 0), (top - 3, 0), (top - 8, 5), (top, -4), (top - 1, 0), (top, 0),
             (0xFFFFFFFF, 1), (0xFFFFFFFF, 4), (0x10000, -1), (0, -1)]
    cases = []
    for op in ("ld", "ldb", "st", "stb"):
        access = f"{op} r3, {{imm}}(r2)" if op.startswith("ld") else f"{op} r2, {{imm}}(r2)"
        for base, imm in pairs:
            source = f"li r2, {_wrap(base)}\n{access.format(imm=imm)}\nli r1, 1\nhalt"
            program = assemble(source, params)
            cases.append((f"{op} {imm}(0x{base:x})", Case(program.words()), None))
    return cases
