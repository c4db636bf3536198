"""The vector microthread slots: their registers, and the checks that start an operation.

A slot holds one vector operation.  Its *launch state* (:func:`launch_layout`)
is written once, when the scalar unit issues the operation: the opcode and
flags, the three operand descriptors as they were at issue, the scalar
operand, and what follows from them (elements per vector, whether the beats
are ``lanes`` wide, the fabric operand).  Its *progress* registers
(:class:`Slot`) move with every beat: the element position (and the elements
remaining, so that a beat's width needs no subtraction), one cursor per
operand, the fabric elements taken, and the two-entry staging buffer of
fabric input.

:func:`check_launch` is the combinational check of a vector instruction's
operands, in the order of :meth:`sim.iss.Core._launch`: the first problem
names the fault.
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal, Value, signed
from amaranth.lib import data

from ..isa import (CONVERSIONS, DESCRIPTORS, SLOTS, UNARY, Dtype, Fault, Kind, Op, Role, VFlag,
                   descriptor_layout)
from .float_lanes import convert_op
from .float_widen import WidenFrom

__all__ = ["launch_layout", "beat_layout", "Slot", "extent_layout", "extent_of",
           "operands", "vmacs_geometry", "check_launch", "is_kind", "element_step", "is_wide"]

INT32_MIN = -(1 << 31)


def launch_layout(params):
    """What a slot is given when its operation starts."""
    descriptor = descriptor_layout(params)
    return data.StructLayout({
        "op": 6,
        "flags": 14,                 # the instruction's immediate: rtl.isa.VFlag
        "dst": descriptor,           # kind NONE for a reduction
        "src": descriptor,
        "src2": descriptor,          # kind NONE when operand c is a scalar register
        "scalar": 32,                # the SCALAR register's value at issue
        "parallel": 1,               # beats are `lanes` elements wide
        "rd": 4,                     # a reduction's destination register
        "elements": 16,              # per vector (VMACS: per chunk)
        "has_fin": 1,
        "fin_is_scalar": 1,          # VMACS with fabric scalars: zeros are skipped
        "fin_color": params.color_bits,
        "fin_length": 16,
        "chunk_step": 16,            # src address step per fabric scalar
        "result": 32,                # a reduction's starting value
        "floating": 1,               # floating point: lanes // 2 elements a beat
        "long": 1,                   # beats write in E6 (float lanes), not E4
        "chained": 1,                # a float accumulation: waits for its sum (sim.iss)
        "x_from": 2,                 # the float lanes' operand types (.float_widen.WidenFrom)
        "y_from": 2,
        "raw_x": 1,                  # VITOF: x is an integer, not widened
        "convert": 3,                # the float lanes' last step (.float_convert.ConvertOp)
        "fin_dtype": 2,              # of the FIN operand: what a zero scalar is
    })


def beat_layout(params):
    """A beat in the pipeline, from its issue to its last stage: what the stages need."""
    lanes = params.lanes
    return data.StructLayout({
        "valid": 1,
        "slot": range(SLOTS),
        "op": 6,
        "flags": 14,
        "count": range(lanes + 1),       # elements
        "lane_valid": lanes,
        "position": 16,                  # of its first element (VARGMAX's index)
        "last": 1,                       # the last beat of a vector or chunk
        "reducing": 1,
        "rd": 4,
        "dst_kind": 3,
        "dst_first": 16,
        "dst_color": params.color_bits,
        "src_kind": 3,
        "src2_kind": 3,
        "src2_base": 16,                 # VTBL's table
        "src2_length": 16,
        "fin_is_scalar": 1,
        "scalar_flag": 1,
        "fabric": 32,                    # the staged wavelet it took
        "scalar": 32,
        "floating": 1,
        "long": 1,
        "x_from": 2,
        "y_from": 2,
        "raw_x": 1,
        "convert": 3,
        "src_wide": 1,                   # MEM elements of 2 bytes (the float lanes)
        "src2_wide": 1,
        "dst_wide": 1,
    })


def extent_layout():
    """What the range checks need of a descriptor, worked out when it is written (so that
    no multiplier sits in the launch's path): its last element's address as a vector and
    its last byte as ``VTBL``'s table of int16, and the accumulator after its end."""
    return data.StructLayout({"last": signed(34), "table_last": 18, "end": 18})


def extent_of(base, length, stride):
    """The :func:`extent_layout` fields of a descriptor; ``stride`` is signed."""
    return {"last": base + (length - 1) * stride, "table_last": base + 2 * length - 1,
            "end": base + length}


def is_wide(descriptor):
    """A MEM descriptor of 2-byte elements (fp16, bf16)."""
    return is_kind(descriptor, Kind.MEM) & (descriptor.dtype != Dtype.INT)


def is_kind(descriptor, *kinds):
    return Cat(descriptor.kind == kind for kind in kinds).any()


def element_step(descriptor):
    """Address step of one element: the stride of MEM, 1 for ACC."""
    return Mux(is_kind(descriptor, Kind.MEM), descriptor.stride, 1)


def accepted(op_is, floating, role, descriptor):
    """:func:`rtl.isa.accepts` in logic: whether an operation (``op_is(*ops)`` says which;
    ``floating``: a float one) takes ``descriptor`` as ``role``."""
    kind, dtype = descriptor.kind, descriptor.dtype
    integer = dtype == Dtype.INT
    float_type = ~integer & ~(is_kind(descriptor, Kind.MEM) & (dtype == Dtype.FP32))
    if role == Role.DST:
        rule = Mux(op_is(Op.VITOF), dtype == Dtype.FP32,
                   Mux(op_is(Op.VFTOI), integer, Mux(floating, float_type, integer)))
    elif role == Role.SRC:
        rule = Mux(op_is(Op.VITOF), integer,
                   Mux(op_is(Op.VDEQ), is_kind(descriptor, Kind.MEM) & integer,
                       Mux(floating, float_type, integer)))
    else:
        rule = Mux(floating, float_type, integer)
    return (kind == Kind.ACC) | rule


class Slot:
    """One microthread slot's registers: ``state`` from launch, and its progress."""

    def __init__(self, params, name):
        self.active = Signal(name=f"{name}_active")
        self.done = Signal(name=f"{name}_done")                      # every beat issued
        self.state = Signal(launch_layout(params), name=f"{name}_state")
        self.position = Signal(16, name=f"{name}_position")
        self.remaining = Signal(16, name=f"{name}_remaining")     # elements - position
        self.cursors = [Signal(16, name=f"{name}_cursor_{role}") for role in ("dst", "src", "src2")]
        self.fin_popped = Signal(16, name=f"{name}_fin_popped")
        self.fin_offset = Signal(16, name=f"{name}_fin_offset")     # src offset of the next scalar
        self.staged = Signal(range(3), name=f"{name}_staged")
        self.staged_value = [Signal(32, name=f"{name}_staged{k}_value") for k in range(2)]
        self.staged_offset = [Signal(16, name=f"{name}_staged{k}_offset") for k in range(2)]
        self.result = Signal(32, name=f"{name}_result")
        self.result_index = Signal(16, name=f"{name}_result_index")

    def registers(self):
        """Every register but ``active``, in a fixed order (for the beat's multiplexers)."""
        return [self.state, self.position, self.remaining, *self.cursors, self.fin_popped,
                self.fin_offset, self.staged, *self.staged_value, *self.staged_offset,
                self.result, self.result_index]


def _pick(m, params, options, index, name, layout=None):
    """The descriptor register ``options[index]``, as a view (of ``layout``, by default a
    descriptor's)."""
    chosen = Signal(layout or descriptor_layout(params), name=name)
    m.d.comb += chosen.eq(Array(Value.cast(option) for option in options)[index])
    return chosen


def operands(m, params, instruction, dsr):
    """The descriptor registers that ``instruction``'s fields a, b, c name:
    ``(dst, src, src2)``."""
    return tuple(_pick(m, params, dsr, index[:3], f"launch_{role}")
                 for index, role in ((instruction.a, "dst"), (instruction.b, "src"),
                                     (instruction.c, "src2")))


def vmacs_geometry(descriptors):
    """``VMACS``'s products, which its first cycle registers for :func:`check_launch`, from
    its :func:`operands`: the elements of all its chunks (fabric scalars:
    ``src2.length * dst.length``) and the source address step from one chunk to the
    next (``dst.length`` elements of ``src``)."""
    dst, src, src2 = descriptors
    return src2.length * dst.length, (dst.length * element_step(src))[:16]


def widen_from(descriptor):
    """How the float lanes widen an element of ``descriptor`` (:class:`.float_widen.WidenFrom`):
    an accumulator or an fp32 wavelet as fp32, int8 MEM as int8."""
    return Mux(is_kind(descriptor, Kind.ACC) | (descriptor.dtype == Dtype.FP32), WidenFrom.FP32,
               Mux(descriptor.dtype == Dtype.FP16, WidenFrom.FP16,
                   Mux(descriptor.dtype == Dtype.BF16, WidenFrom.BF16, WidenFrom.INT8)))


def check_launch(m, params, instruction, regs, descriptors, extents, volume, chunk_step):
    """Check the vector instruction ``instruction`` (a view of :data:`rtl.isa.INSTRUCTION`)
    against the scalar registers ``regs`` and its :func:`operands` ``descriptors`` (with the
    descriptor registers' ``extents``, :func:`extent_layout`); ``volume`` and
    ``chunk_step`` are a ``VMACS``'s :func:`vmacs_geometry`.

    Returns ``(cause, state, activates)``: the :class:`rtl.isa.Fault` it raises (``NONE``
    if it may start), the slot's launch state, and whether the slot runs at all (a
    ``VMACS`` by a zero scalar register is skipped whole)."""
    p = params
    opcode, a, b, c, imm = (instruction.opcode, instruction.a, instruction.b, instruction.c,
                            instruction.imm)

    def is_op(*ops):
        return Cat(opcode == o for o in ops).any()

    reduction = is_op(Op.VSUM, Op.VRMAX, Op.VARGMAX)
    scalar = imm[VFlag.SCALAR.bit_length() - 1]
    floating = imm[VFlag.FLOAT.bit_length() - 1] | is_op(*CONVERSIONS)
    uses_c = ~is_op(*UNARY) & ~reduction
    c_vector = uses_c & ~scalar                  # operand c is a descriptor
    dst, src, src2 = descriptors

    fin_src = is_kind(src, Kind.FIN)
    fin_src2 = c_vector & is_kind(src2, Kind.FIN)
    without_lanes = floating if not p.float_lanes else Const(0)
    illegal = (without_lanes | floating & is_op(Op.VQNT, Op.VTBL)
               | (~reduction & (a >= DESCRIPTORS)) | (b >= DESCRIPTORS)
               | (c_vector & (c >= DESCRIPTORS))
               | ~is_kind(src, Kind.MEM, Kind.ACC, Kind.FIN)
               | (c_vector & ~is_kind(src2, Kind.MEM, Kind.ACC, Kind.FIN))
               | (~reduction & ~is_kind(dst, Kind.MEM, Kind.ACC, Kind.FOUT))
               | (fin_src & fin_src2)
               | (is_op(Op.VMAC, Op.VMACS) & ~is_kind(dst, Kind.ACC))
               | (is_op(Op.VTBL) & (scalar | ~is_kind(src2, Kind.MEM)))
               | (is_op(Op.VMACS) & (fin_src | ~scalar & ~fin_src2)))
    used = [(dst, ~reduction), (src, Const(1)), (src2, c_vector)]
    mistyped = Cat(use & ~accepted(is_op, floating, role, d)
                   for (d, use), role in zip(used, Role)).any()
    bad_color = Cat(use & is_kind(d, Kind.FIN, Kind.FOUT) & (d.stride >= p.colors)
                    for d, use in used).any()
    elements = Mux(reduction, src.length, dst.length)
    elementwise = ~reduction & ~is_op(Op.VMACS, Op.VTBL)
    bad_shape = ((elements == 0)
                 | is_op(Op.VMACS) & ~scalar & ((src2.length == 0) | (src.length != volume))
                 | is_op(Op.VMACS) & scalar & (src.length != elements)
                 | is_op(Op.VTBL) & ((src.length != elements) | (src2.length < 2))
                 | elementwise & ((src.length != elements)
                                  | c_vector & (src2.length != elements)))
    range_cause = Const(Fault.NONE, 3)
    picked = [_pick(m, p, extents, index[:3], f"launch_extent_{role}", extent_layout())
              for index, role in ((a, "dst"), (b, "src"), (c, "src2"))]
    for (d, use), extent in reversed(list(zip(used, picked))):   # the first failing wins
        table = is_op(Op.VTBL) & (d is src2)
        # A 2-byte element's last byte is one past its address: the limit is one lower.
        wide = is_wide(d)

        def beyond(address):
            return (address >= p.data_bytes) | wide & (address >= p.data_bytes - 1)
        mem_bad = beyond(d.base) | Mux(table, extent.table_last >= p.data_bytes,
                                       (extent.last < 0) | beyond(extent.last))
        acc_bad = extent.end > p.acc_words
        range_cause = Mux(use & is_kind(d, Kind.MEM) & mem_bad, Fault.MEM_RANGE,
                          Mux(use & is_kind(d, Kind.ACC) & acc_bad, Fault.ACC_RANGE, range_cause))
    cause = Signal(3, name="launch_cause")
    m.d.comb += cause.eq(Mux(illegal, Fault.ILLEGAL,
                             Mux(mistyped, Fault.TYPE,
                                 Mux(bad_color, Fault.COLOR,
                                     Mux(bad_shape, Fault.SHAPE, range_cause)))))

    vector_src2 = c_vector & ~is_op(Op.VTBL, Op.VMACS)
    flat = [(dst, ~reduction), (src, Const(1)), (src2, vector_src2)]
    parallel = ~is_op(Op.VTBL) & ~(floating & is_op(Op.VSUM)) & Cat(
        ~use | is_kind(d, Kind.ACC) | is_kind(d, Kind.MEM) & (d.stride == 1 + is_wide(d))
        for d, use in flat).all()
    rc = regs[c]
    long = floating & ~is_op(Op.VRMAX, Op.VARGMAX)
    zero = Mux(floating, rc[:31] == 0, rc == 0)          # VMACS skips the register scalar
    sixteen = is_wide(dst) | is_kind(dst, Kind.FOUT) & ((dst.dtype == Dtype.FP16)
                                                       | (dst.dtype == Dtype.BF16))
    state = Signal(launch_layout(p), name="launch_state")
    activates = Signal(name="launch_activates")
    m.d.comb += [
        state.op.eq(opcode), state.flags.eq(imm),
        state.dst.eq(dst), state.src.eq(src), state.src2.eq(src2),
        state.scalar.eq(rc), state.parallel.eq(parallel), state.rd.eq(a),
        state.elements.eq(elements),
        state.has_fin.eq(fin_src | fin_src2),
        state.fin_is_scalar.eq(is_op(Op.VMACS) & ~scalar),
        state.fin_color.eq(Mux(fin_src, src.stride, src2.stride)),
        state.fin_length.eq(Mux(fin_src, src.length, src2.length)),
        state.chunk_step.eq(chunk_step),
        state.result.eq(Mux(is_op(Op.VRMAX, Op.VARGMAX), INT32_MIN,
                            Mux(floating & is_op(Op.VSUM), INT32_MIN, 0))),
        activates.eq(~(is_op(Op.VMACS) & scalar & zero)),
        state.floating.eq(floating), state.long.eq(long),
        state.chained.eq(long & is_op(Op.VMAC, Op.VMACS, Op.VSUM)),
        state.x_from.eq(widen_from(src)), state.raw_x.eq(is_op(Op.VITOF)),
        state.y_from.eq(Mux(scalar, WidenFrom.FP32, widen_from(src2))),
        state.convert.eq(convert_op(opcode, ~reduction & sixteen, dst.dtype == Dtype.BF16)),
        state.fin_dtype.eq(Mux(fin_src, src.dtype, src2.dtype)),
    ]
    with m.If(reduction):
        m.d.comb += state.dst.kind.eq(Kind.NONE)
    with m.If(~c_vector):
        m.d.comb += state.src2.kind.eq(Kind.NONE)
    return cause, state, activates
