"""Berkeley SoftFloat 3 (the ``softfloatpy`` wheel) on raw bit patterns: the independent
peer that :mod:`sim.fp` and the float lanes are checked against.

SoftFloat's NaNs keep no canonical form of ours (its default NaN is 0xFFC00000), so the
tests compare NaNs as a class.  Tininess is detected after rounding, as in sim.fp.
"""

import softfloatpy as sf

__all__ = ["PEERS", "run"]

_FORMATS = {"f16": (sf.Float16, 2), "bf16": (sf.BFloat16, 2), "f32": (sf.Float32, 4)}


def _number(kind, bits):
    cls, size = _FORMATS[kind]
    return cls.from_bytes(int(bits).to_bytes(size, "big"))


def _signed32(bits):
    bits = int(bits) & 0xFFFFFFFF
    return sf.Int32.from_int(bits - (1 << 32) if bits >> 31 else bits)


#: name: (the function, the kinds of its operands)
PEERS = {
    "f32_add": (sf.f32_add, ("f32", "f32")),
    "f32_mul": (sf.f32_mul, ("f32", "f32")),
    "f32_mul_add": (sf.f32_mul_add, ("f32", "f32", "f32")),
    "f16_add": (sf.f16_add, ("f16", "f16")),
    "f16_mul": (sf.f16_mul, ("f16", "f16")),
    "f16_to_f32": (sf.f16_to_f32, ("f16",)),
    "f32_to_f16": (sf.f32_to_f16, ("f32",)),
    "f32_to_bf16": (sf.f32_to_bf16, ("f32",)),
    "i32_to_f32": (sf.i32_to_f32, ("i32",)),
}


def run(name, *operands):
    """SoftFloat's ``name`` of operands given as bit patterns (an int32 as its 32 bits);
    returns the result's bits."""
    function, kinds = PEERS[name]
    arguments = [_signed32(bits) if kind == "i32" else _number(kind, bits)
                 for kind, bits in zip(kinds, operands, strict=True)]
    return int.from_bytes(function(*arguments).to_bytes(), "big")
