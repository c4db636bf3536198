"""The formal proofs (`sim/formal.py`, `make formal`): each holds and reaches its covers,
and each fails on a mutant, a design with one planted bug, with a counterexample from
reset (sby's ``bmc`` mode) against the property the bug breaks.

The mutants are made here, without a copy of the RTL: a subclass that overrides one
port signal after elaboration, or one of the router's helpers wrapped while the mutant
elaborates.  Where a bug strikes only now and then, the solver chooses when (``AnySeq``).
"""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Const, Mux, Signal

import rtl.core.ramp
import rtl.router
from rtl.core.ramp import RampInput, RampOutput
from rtl.router import Router
from rtl.wavelet import Dir
from sim import formal
from sim.build import BUILD

PARAMS = formal.FORMAL_PARAMS


@pytest.mark.parametrize("name", list(formal.PROOFS))
def test_the_proof_holds_and_reaches_its_covers(name):
    assert formal.run(name) == {"prove": "PASS", "cover": "PASS"}


class DroppingRouter(Router):
    """Now and then an output forgets to drive the wavelet it granted."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(AnySeq(1)):
            m.d.comb += self.outputs[Dir.E.value].valid.eq(0)
        return m


class RepeatingRouter(Router):
    """Now and then an output sends again the wavelet it sent last, with no credit for it
    (over whatever it was sending)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        link = self.outputs[Dir.E.value]
        sent, last = Signal(), Signal.like(link.wavelet)
        m.d.sync += sent.eq(link.valid)
        with m.If(link.valid):
            m.d.sync += last.eq(link.wavelet)
        with m.If(sent & AnySeq(1)):
            m.d.comb += [link.valid.eq(1), link.wavelet.eq(last)]
        return m


class CreditlessRampOutput(RampOutput):
    """Tells the core a credit is free when none is."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.credit_free.eq(-1)
        return m


def _head_sometimes_stays(move_queues):
    """Queues whose head now and then stays put as its wavelet leaves: it goes again."""
    def mutant(m, depth, count, head, tail, link, leaving, same):
        accepted = move_queues(m, depth, count, head, tail, link, leaving, same)
        with m.If(AnySeq(1)):
            for c in range(len(leaving)):
                m.d.sync += head[c].eq(head[c])
        return accepted
    return mutant


def _full_queue_sometimes_rotates(move_queues):
    """A full queue whose head and tail now and then step on together, its pointers and
    count still agreeing: its two oldest wavelets swap places (at depth 2)."""
    def mutant(m, depth, count, head, tail, link, leaving, same):
        accepted = move_queues(m, depth, count, head, tail, link, leaving, same)
        for c in range(len(leaving)):
            with m.If((count[c] == depth) & ~leaving[c] & AnySeq(1)):
                following = Mux(head[c] == depth - 1, 0, head[c] + 1)
                m.d.sync += [head[c].eq(following), tail[c].eq(following)]
        return accepted
    return mutant


def _pointer_stuck_at_zero(round_robin, stage):
    """The round robins of one stage (``out_``: the outputs', which then always start
    from the north input; ``in_``: the inputs', from color 0) have a fixed priority."""
    def mutant(m, requests, pointer, name):
        if name.startswith(stage):
            pointer = Const(0, len(pointer))
        return round_robin(m, requests, pointer, name)
    return mutant


def _mutants():
    """(proof, mutant name, patches, design, phrases of the properties it may break)."""
    return [
        ("router", "drops a wavelet", [], lambda: DroppingRouter(PARAMS), ["link.valid &"]),
        ("router", "sends without a credit", [], lambda: RepeatingRouter(PARAMS),
         ["credits[c] + held[c]", "link.valid &"]),
        ("router", "duplicates a queued wavelet",
         [(rtl.router, "move_queues", _head_sometimes_stays(rtl.router.move_queues))],
         lambda: Router(PARAMS), ["tail == wrap(head + count"]),
        ("router", "reorders a queued wavelet",
         [(rtl.router, "move_queues", _full_queue_sometimes_rotates(rtl.router.move_queues))],
         lambda: Router(PARAMS), ["slot.data == tracked"]),
        ("router", "starves an input",
         [(rtl.router, "round_robin", _pointer_stuck_at_zero(rtl.router.round_robin, "out_"))],
         lambda: Router(PARAMS), ["starving +"]),
        ("router", "starves a color",
         [(rtl.router, "round_robin", _pointer_stuck_at_zero(rtl.router.round_robin, "in_"))],
         lambda: Router(PARAMS), ["passed +", "waiting +"]),
        ("ramp_in", "duplicates a queued wavelet",
         [(rtl.core.ramp, "move_queues", _head_sometimes_stays(rtl.core.ramp.move_queues))],
         lambda: RampInput(PARAMS), ["tail == wrap(head + count"]),
        ("ramp_out", "ignores a credit", [], lambda: CreditlessRampOutput(PARAMS),
         ["credits[c] + reserved + held[c]"]),
    ]


@pytest.mark.parametrize("proof, mutant, patches, design, breaks", _mutants(),
                         ids=[f"{proof}-{mutant.replace(' ', '_')}"
                              for proof, mutant, *_ in _mutants()])
def test_the_proof_fails_on_a_mutant(monkeypatch, proof, mutant, patches, design, breaks):
    for module, name, value in patches:
        monkeypatch.setattr(module, name, value)
    directory = BUILD / "formal" / f"{proof}-mutant-{mutant.replace(' ', '-')}"
    assert formal.run(proof, design(), tasks=("bmc",), directory=directory) == {"bmc": "FAIL"}
    failed = formal.failed_properties(directory, "bmc")
    assert any(phrase in line for phrase in breaks for line in failed), failed
