"""The far ends of a credit link (:class:`rtl.wavelet.LinkSignature`), for proofs.

A block under proof sees only its own end of each link.  These models stand for the
other end: they assume what a well-behaved neighbour does and count what the link
owes, so that the block can assert the protocol's one invariant: for every color, the
sender's credits plus the wavelets the receiver holds (or has not yet returned the
credit of) equal the receiver's queue depth.  The properties of a receiver's queues
(the router's and the ramp's) are here too.  Elaborated only for the ``formal``
platform.
"""

from dataclasses import dataclass

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Mux, Signal

__all__ = ["credit_sender", "credit_receiver", "Queues", "wrap", "queue_properties",
           "tracked_wavelet"]


def credit_sender(m, link, colors, depth, name):
    """The sender feeding ``link`` (a link the block receives): it sends a color only while
    it holds a credit for it, and takes back each credit the block returns.  Returns its
    credit counters, one per color."""
    credits = [Signal(range(depth + 1), init=depth, name=f"{name}_sender_credits_c{c}")
               for c in range(colors)]
    m.d.comb += Assume(~link.valid | (link.wavelet.color < colors))
    for c, credit in enumerate(credits):
        sent = link.valid & (link.wavelet.color == c)
        returned = link.credit & (link.credit_color == c)
        m.d.comb += Assume(~sent | (credit != 0))
        m.d.sync += credit.eq(credit - sent + returned)
    return credits


def credit_receiver(m, link, colors, depth, name):
    """The receiver of ``link`` (a link the block sends on): it returns a credit only for
    a wavelet it holds, from the cycle after the wavelet arrived.  Returns, per color, the
    wavelets it holds (counted up to ``depth + 1``, so one too many shows)."""
    held = [Signal(range(depth + 2), name=f"{name}_receiver_holds_c{c}") for c in range(colors)]
    m.d.comb += Assume(~link.credit | (link.credit_color < colors))
    for c, count in enumerate(held):
        sent = link.valid & (link.wavelet.color == c)
        returned = link.credit & (link.credit_color == c)
        m.d.comb += Assume(~returned | (count != 0))
        m.d.sync += count.eq(count + sent - returned)
    return held


@dataclass(frozen=True)
class Queues:
    """The per-color queues of a receiver (see :func:`rtl.router.move_queues`): their
    memory, ``address(slot, color)`` of a word in it, and the :class:`rtl.router.Packed`
    counters."""
    memory: object
    address: object
    count: object
    head: object
    tail: object
    colors: int
    depth: int


def wrap(value, depth):
    """``value`` (below ``2 * depth``) modulo ``depth``."""
    return Mux(value >= depth, value - depth, value)


def queue_properties(m, queues, link, accepted, name):
    """The queues behind ``link`` agree with their pointers and with the sender's credits
    (so a sender that respects them never finds a queue full), and take every wavelet
    sent.  Returns the sender's credits."""
    sender = credit_sender(m, link, queues.colors, queues.depth, name)
    for c in range(queues.colors):
        count, head, tail = queues.count[c], queues.head[c], queues.tail[c]
        m.d.comb += [Assert(count <= queues.depth),
                     Assert(tail == wrap(head + count, queues.depth)),
                     Assert(sender[c] + count == queues.depth)]
    m.d.comb += Assert(~link.valid | accepted)
    return sender


def tracked_wavelet(m, queues, color, arrives, word, leaves, name):
    """Order within a color: a wavelet of ``color``, chosen freely as it ``arrives`` (as
    ``word``), sits behind exactly the wavelets that came before it and still wait, in the
    slot they imply, until it ``leaves``.  Returns ``(tracking, ahead, tracked)``: whether
    one is tracked, how many of its color are in front of it, and its word."""
    depth = queues.depth
    tracking = Signal(name=f"tracking_{name}")
    ahead = Signal(range(depth), name=f"tracked_ahead_{name}")
    tracked = Signal(len(word), name=f"tracked_{name}")
    count = queues.count[color]
    with m.If(arrives & AnySeq(1) & ~tracking):
        m.d.sync += [tracking.eq(1), ahead.eq(count - leaves), tracked.eq(word)]
    with m.Elif(tracking & leaves):
        m.d.sync += [tracking.eq(ahead != 0), ahead.eq(ahead - 1)]
    slot = queues.memory.read_port(domain="comb")
    m.d.comb += slot.addr.eq(queues.address(wrap(queues.head[color] + ahead, depth), color))
    with m.If(tracking):
        m.d.comb += [Assert(ahead < count), Assert(slot.data == tracked)]
    return tracking, ahead, tracked
