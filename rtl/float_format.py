"""The floating-point formats of the vector lanes: IEEE 754 binary16 and binary32, and bfloat16.

One definition for the RTL (:mod:`rtl.core.float_parts` and the units), the
specification (:mod:`sim.fp`) and the tests.
"""

from dataclasses import dataclass

__all__ = ["FloatFormat", "FP16", "BF16", "FP32", "CANONICAL_NAN"]


@dataclass(frozen=True)
class FloatFormat:
    name: str
    exponent_bits: int
    fraction_bits: int

    @property
    def bits(self):
        return 1 + self.exponent_bits + self.fraction_bits

    @property
    def bias(self):
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def exponent_mask(self):
        return (1 << self.exponent_bits) - 1

    @property
    def sign_bit(self):
        return 1 << (self.bits - 1)

    @property
    def infinity(self):
        return self.exponent_mask << self.fraction_bits

    @property
    def lowest_exponent(self):
        """The exponent of a subnormal's last bit: ``1 - bias - fraction_bits``."""
        return 1 - self.bias - self.fraction_bits


FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
FP32 = FloatFormat("fp32", 8, 23)

#: The one NaN every operation returns, by format: positive, quiet, no payload.
CANONICAL_NAN = {fmt: fmt.infinity | 1 << (fmt.fraction_bits - 1) for fmt in (FP16, BF16, FP32)}
