"""Pipeline registers: the vector pipeline never stalls, so a stage's register is a delay."""

from amaranth.hdl import Signal, Value

__all__ = ["delay"]


def delay(m, value, name, shape=None):
    """``value`` one cycle later, in a register of ``shape`` (by default ``value``'s)."""
    register = Signal(Value.cast(value).shape() if shape is None else shape, name=name)
    m.d.sync += register.eq(value)
    return register
