"""docs/isa.md is what `python -m host.isa_reference` generates from rtl/isa.py today: the
ISA reference cannot drift from the encoding."""

import enum

from host import isa_reference
from rtl import isa


def test_the_isa_reference_is_generated_from_the_source():
    assert isa_reference.DOCUMENT.read_text() == isa_reference.reference(), (
        "docs/isa.md is stale: run make docs")


def test_every_opcode_and_counter_is_in_the_reference_with_its_value():
    text = isa_reference.reference()
    for op in isa.Op:
        assert f"| {int(op)} | `{op.name}` | `{isa.OPS[op].format.value}` |" in text
    for counter in isa.Counter:
        assert f"| `{counter.name}` | {int(counter)} |" in text


def test_a_member_takes_the_comment_beside_it_and_its_group_heading():
    class Sample(enum.IntEnum):
        # the first group
        ONE = 1          # the first
        TWO = 2          # the second,
                         # continued
        # the second group
        THREE = 3

    assert isa_reference.comments(Sample) == {
        "ONE": ("the first group", "the first"),
        "TWO": ("the first group", "the second, continued"),
        "THREE": ("the second group", "")}
