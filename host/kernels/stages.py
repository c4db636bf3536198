"""Stage programs: one tile's whole loop over the tokens of a generation.

A stage takes the residual stream ``h`` (``dim`` wavelets) on one color, runs
its part of the model and sends the new ``h`` on another; the first stage starts
from a token instead, and the classifier stage ends with one.  The first stage is
layer 0's first tile, which also looks the token up in the embedding table (a
stage of its own would hold an entry in the pipeline for a lookup of a few dozen
cycles), or when the table does not fit there embedding tiles.  What a block
computes, and in which numbers, is the model's numeric format's
(:func:`layers_of`: int8 with int32 accumulators, or 16-bit floats with fp32
ones); the stages here are the same for both.
Every stage takes the tokens in the order of the :class:`Schedule`, (user,
position) entries (a record an entry in its SRAM, the same in every stage:
:func:`read_log`): ``r15`` holds the position and ``r14`` the slot, ``user *
seq_len + position``, which indexes the user's KV cache.  After the last entry a
stage halts.  For each entry it stamps its cycle counter three times and its
SRAM read counter once, into the entry's log (:data:`LOG_WORDS` words):

- ``ready``: it waits for its input;
- ``received``: the input is in;
- ``sent``: its output is on its way (the compute in between; the residual and q,
  k, v are sent from microthread slot 1 while the stage goes on: :func:`_output`);
- ``reads``: data SRAM bytes read so far.
"""

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from host.half_model import HalfModel
from host.kernels import vector
from host.kernels.half_layers import HalfLayers
from host.kernels.int_layers import IntLayers
from host.kernels.program import ARG0, ARG1, POS, SLOT, STAGE, TileProgram
from rtl.isa import IMM_BITS, Counter, Dtype, element_bytes
from rtl.wavelet import ADDRESSED, pack_addressed

__all__ = ["Links", "Schedule", "Slots", "request_payloads", "cancel_payloads", "LAST_FLAG",
           "REQUEST_HEADER", "LOG_WORDS", "read_log", "MAX_USERS", "tag_bits", "untag",
           "layers_of", "embedding_stage", "attention_stage", "qkv_stage",
           "split_attention_stage", "ffn_stage", "classifier_stage", "halt_program"]

INT32_MIN = -(1 << 31)
#: Classifier rows per accumulator pass.
CLASSIFIER_CHUNK = 128

LOG_WORDS = 4
#: Words of an entry's record: the entry, then its log.
RECORD_WORDS = 1 + LOG_WORDS
#: Users a schedule may hold (5 bits of the entry's word).
MAX_USERS = 31
#: A generated token travels as ``user << token_bits | token`` in an XY-addressed
#: wavelet's payload (:func:`tag_bits`).
TAG_BITS = ADDRESSED["payload"].width
#: On a running wafer, the flag of a tagged token to the host that is its request's last
#: (above the tag: the host color's wavelets carry 32 bits).
LAST_FLAG = 1 << TAG_BITS
#: The widest mask ``ANDI`` takes (its immediate is signed).
_ANDI_MASK = (1 << IMM_BITS - 1) - 1


def tag_bits(vocab_size):
    """``(token_bits, users)``: the bits of a tagged token below its user (at least 8),
    and how many users the rest can name."""
    token_bits = max(8, (vocab_size - 1).bit_length())
    return token_bits, min(MAX_USERS, (1 << TAG_BITS - token_bits) - 1)


def untag(data, token_bits):
    """``(user, token)`` of a tagged generated token, as the host receives it."""
    return data >> token_bits & (1 << TAG_BITS - token_bits) - 1, data & (1 << token_bits) - 1


@dataclass(frozen=True)
class Links:
    """The colors and places a stage talks to."""
    color_in: int                # h (or, for the tile that embeds, unused)
    color_out: int               # h (or, for the classifier, unused)
    token_color: int             # XY-addressed: generated tokens back to the tile that embeds
    host_color: int              # that tile's generated tokens, out to the host
    embed_tile: tuple            # where that tile is (the tokens' destination)
    token_bits: int              # of a tagged token (:func:`tag_bits`)
    loop_color: int              # routed from the tile's ramp back to it (streamed GEMVs)
    reduce_colors: tuple = ()    # partial sums between the slices of a region, alternating
    request_color: int = None    # XY-addressed, on a running wafer (:class:`Slots`): requests
                                 # from the host to the tile that embeds


@dataclass(frozen=True)
class Schedule:
    """Who goes when: ``prompt_lens[u]`` prompt tokens and ``counts[u]`` generated tokens
    for each user ``u``; a user's last generated token is not fed back, so it takes
    ``prompt_lens[u] + counts[u] - 1`` entries.

    Prompt tokens go in back to back, without waiting for the token loop; with
    ``serial_prefill`` each waits for the classifier's pass over the one before (the
    classifier then sends a token for every position, and the embedding tile uses the
    prompt's token instead; the host ignores those), which is how a pipeline without
    parallel prompt processing would take them.

    ``depth``: the entries the pipeline works on at once (its steps).  An entry that
    waits for the token loop goes ``depth`` places after its user's previous entry at
    the earliest (:attr:`entries`), and prompt entries fill the places between."""
    prompt_lens: tuple
    counts: tuple
    seq_len: int
    serial_prefill: bool = False
    depth: int = 1

    @property
    def users(self):
        return len(self.prompt_lens)

    def first(self, users):
        """The schedule of the first ``users`` users alone."""
        return dataclasses.replace(self, prompt_lens=self.prompt_lens[:users],
                                   counts=self.counts[:users])

    @property
    def totals(self):
        return [p + n - 1 for p, n in zip(self.prompt_lens, self.counts)]

    @property
    def first_sent(self):
        """Per user, the first position whose classifier output goes back to the
        embedding tile."""
        return tuple(0 if self.serial_prefill else p - 1 for p in self.prompt_lens)

    @property
    def waits_from(self):
        """Per user, the first position whose embedding waits for a token from the loop."""
        return tuple(1 if self.serial_prefill else p for p in self.prompt_lens)

    @property
    def sent(self):
        """Tokens the classifier sends back, all users."""
        return sum(total - first for total, first in zip(self.totals, self.first_sent))

    @cached_property
    def entries(self):
        """``(user, position)`` in the order every stage takes them (worked out once: every
        stage program and the host's reading of the logs use it).  Places are numbered
        as the pipeline takes entries in; each goes to the user who has waited longest of
        those whose next entry can go: a prompt entry the place after its user's previous
        one, an entry fed by the token loop ``depth`` places after it.  Users in decode
        take turns, a position each; a user still in its prompt takes the places they
        leave free."""
        totals, waits_from = self.totals, self.waits_from
        position, ready, last = [0] * self.users, [0] * self.users, [-1] * self.users
        order, place = [], 0
        while len(order) < sum(totals):
            pending = [u for u in range(self.users) if position[u] < totals[u]]
            waiting = [u for u in pending if ready[u] <= place]
            if not waiting:
                place = min(ready[u] for u in pending)
                continue
            user = min(waiting, key=lambda u: (last[u], u))
            order.append((user, position[user]))
            position[user] += 1
            last[user] = place
            ready[user] = place + (self.depth if position[user] >= waits_from[user] else 1)
            place += 1
        return order


@dataclass(frozen=True)
class Slots:
    """A running wafer's users: ``users`` slots, each with its own KV cache of ``seq_len``
    positions, which requests take as they arrive and leave when they finish.

    Nothing is scheduled ahead.  The first tile decides each entry as it goes
    (:func:`_slot_scheduler`) and sends the entry's word ahead of its output; every
    other stage takes the word from its input (:func:`_entry_from_input`) and sends it
    ahead of its own, so that every stage follows the first tile's one sequence.  A
    request is a run of XY-addressed wavelets to the first tile on ``request_color``
    (:func:`request_payloads`); the classifier sends a token back for every position,
    and the first tile echoes to the host the ones after each prompt, up to the
    request's ``max_tokens`` or its ``stop_token`` (if not None) whichever comes first,
    after which the slot is free.  The stages keep no logs."""
    users: int
    seq_len: int
    stop_token: int = None

    def first(self, users):
        return Slots(users, self.seq_len, self.stop_token)


#: A request's words ahead of its prompt's tokens (:func:`request_payloads`).
REQUEST_HEADER = ("slot", "prompt length", "max_tokens")
#: The first tile's tasks on a running wafer, in priority order (the lowest runs first).
TOKEN_TASK, REQUEST_TASK, ENTRY_TASK = 0, 1, 2
#: Words of a slot's state on the first tile (:func:`_slot_scheduler`), and their offsets.
_SLOT_WORDS = 8
_ACTIVE, _POSITION, _PROMPT_LEN, _SKIP, _LEFT, _LAST, _MAILBOX = (4 * k for k in range(7))


def request_payloads(slot, prompt, max_tokens):
    """The payloads of a request's wavelets, in order: :data:`REQUEST_HEADER`, then the
    prompt's tokens."""
    return [slot, len(prompt), max_tokens, *prompt]


def cancel_payloads(slot):
    """The payloads that end the request in ``slot`` at its next generated token: a
    request header with no prompt.  A slot already free ignores them."""
    return [slot, 0, 0]


def layers_of(model):
    """The tile code of ``model``'s blocks in its numeric format: :class:`IntLayers` for
    :class:`host.model.QuantModel`, :class:`HalfLayers` for :class:`HalfModel`."""
    return HalfLayers(model) if isinstance(model, HalfModel) else IntLayers(model)


def _records(schedule):
    """The schedule as the stages keep it: a record an entry, a word ``user | position
    << 5 | slot << 16`` and then the entry's log (:data:`LOG_WORDS` words)."""
    records = bytearray()
    for user, position in schedule.entries:
        slot = user * schedule.seq_len + position
        assert user <= MAX_USERS and position < 1 << 11 and slot < 1 << 16, \
            "an entry's word holds 5 bits of user, 11 of position and 16 of slot"
        records += (user | position << 5 | slot << 16).to_bytes(4, "little")
        records += bytes(4 * LOG_WORDS)
    return bytes(records)


def read_log(memory, address, entries):
    """The logs of ``entries`` records at ``address`` of a data memory: an array
    (entries, :data:`LOG_WORDS`)."""
    records = np.frombuffer(memory, np.uint32, offset=address, count=RECORD_WORDS * entries)
    return records.reshape(entries, RECORD_WORDS)[:, 1:].astype(np.int64)


@dataclass(frozen=True)
class _Source:
    """How a stage takes each entry.  ``take(received)``: its input into acc[h].  Batch
    runs (:class:`Schedule`): ``after_loop``, code after the last entry.  A running wafer
    (:class:`Slots`): ``entry()``, code that leaves the next entry's word in r2, and for
    the first tile ``start(top)``, its tasks' code, and ``again()``, which ends an entry."""
    take: object
    after_loop: object = None
    entry: object = None
    start: object = None
    again: object = None


def _loop(t, schedule, body, source):
    """``body()`` once per entry, with the entry's position in r15 and slot in r14.

    Batch runs: once per entry of the :class:`Schedule`, stamping the log (module
    docstring); returns the records' address, and the word ``cursor`` holds the current
    record's.  A running wafer: forever, each entry's word from ``source.entry`` kept in
    the word ``entry``; returns None."""
    b = t.b
    serving = isinstance(schedule, Slots)
    if serving:
        entry = t.word("entry", 0)
    else:
        records = t.alloc("entries", content=_records(schedule), align=4)
        cursor = t.word("cursor", records)
    top = t.fresh("entry")
    if source.start:
        source.start(top)
    b.label(top)
    if serving:
        source.entry()
        b.li(1, entry)
        b.st(2, 1, 0)
    else:
        _cursor(t, 1)
        b.ld(2, 1, 0)
    b.srli(POS, 2, 5)
    b.andi(POS, POS, 0x7FF)
    b.srli(SLOT, 2, 16)
    if serving:
        body(lambda: None, lambda: None)
        if source.again:
            source.again()
        else:
            b.beq(0, 0, top)
        return None
    _stamp(t, Counter.CYCLES, 0)
    body(lambda: _stamp(t, Counter.CYCLES, 4), lambda: (_stamp(t, Counter.CYCLES, 8),
                                                        _stamp(t, Counter.SRAM_READS, 12)))
    _cursor(t, 1)
    b.addi(1, 1, 4 * RECORD_WORDS)
    b.li(2, cursor)
    b.st(1, 2, 0)
    b.li(2, records + 4 * RECORD_WORDS * len(schedule.entries))
    b.bne(1, 2, top)
    return records


def _cursor(t, register):
    """The address of the current entry's record, into ``register``."""
    t.b.li(register, t.symbols["cursor"][0])
    t.b.ld(register, register, 0)


def _entry_word(t, register):
    """The current entry's word, into ``register`` (r1 is overwritten)."""
    if "entry" in t.symbols:
        t.b.li(register, t.symbols["entry"][0])
    else:
        _cursor(t, register)
    t.b.ld(register, register, 0)


def _user(t, register):
    """The current entry's user, into ``register``."""
    _entry_word(t, register)
    t.b.andi(register, register, MAX_USERS)


def _stage(t, schedule, body, source):
    """The stage's loop (:func:`_loop`), then ``source.after_loop()`` if given, then HALT:
    the program and its log's address (None on a running wafer, which loops forever)."""
    log = _loop(t, schedule, body, source)
    if source.after_loop:
        source.after_loop()
    if log is not None:
        t.b.halt()
    return t, log


def _name(stage, prompts):
    """A stage's name, which says when it also embeds."""
    return stage if prompts is None else f"embedding + {stage}"


def _of(part, parts):
    return f" {part + 1}/{parts}" if parts > 1 else ""


def _rows(total, part, parts):
    """Slice ``part`` of ``parts`` of ``total`` rows (or units)."""
    size = total // parts
    return slice(part * size, (part + 1) * size)


def _attention_tile(params, layers, name):
    """A tile program with the residual's and the products' accumulators reserved."""
    t = TileProgram(params, name)
    return t, t.acc("h", layers.config.dim), t.acc("products", layers.products)


def _stamp(t, counter, offset):
    """Store a counter at the current entry's log + ``offset``."""
    t.b.csrr(2, counter)
    _cursor(t, 1)
    t.b.st(2, 1, 4 + offset)


def _output(t, layers, links, schedule, sources, ahead=()):
    """Code that sends a stage's output ``sources`` (as for
    :func:`host.kernels.vector.send_behind`) on ``links.color_out`` while the stage
    goes on: the time the next step takes to take it in is not this stage's.  On a
    running wafer the entry's word goes first, and the registers ``ahead`` before the
    sources, once the previous output has left (slot 1 sends it).  Its accumulators
    are reserved here."""
    out = t.acc("out", sum(length for _, _, length in sources))
    serving = isinstance(schedule, Slots)

    def send():
        if serving or ahead:
            t.b.wait(1)
        if serving:                           # the next stage takes it first
            _entry_word(t, 2)
            t.b.send(2, links.color_out)
        for register in ahead:
            t.b.send(register, links.color_out)
        vector.send_behind(t, sources, out, links.color_out, layers.dtype)

    return send


def _entry_from_input(t, links):
    """The next entry's word from the input's first wavelet, into r2."""
    return lambda: t.b.recv(2, links.color_in)


def _input(t, layers, links, schedule, h, prompts=None):
    """How a stage takes each entry's input into acc[h], a :class:`_Source`.

    Without ``prompts``: the residual stream from the step before.  With them (layer
    0's first tile): the entry's token (:func:`_token`), looked up in the whole
    embedding table."""
    if prompts is None:
        def receive(received):
            vector.receive(t, h, layers.config.dim, links.color_in)
            received()
        return _Source(receive, entry=_entry_from_input(t, links))
    table = layers.embedding_table(t, slice(None))
    source = _token(t, layers, links, schedule, prompts)

    def embed(received):
        source.take(received)
        layers.embed(t, table, STAGE, h)

    return dataclasses.replace(source, take=embed)


def _prompt_table(t, config, users, prompts):
    """The prompts' table on the first tile: row ``u`` of ``seq_len`` tokens for user
    ``u``, indexed by the slot, a byte a token (two for a vocabulary beyond 256); its
    address and a token's bytes."""
    width = 1 if config.vocab_size <= 256 else 2
    rows = bytearray(users * config.seq_len * width)
    for user, prompt in zip(range(users), prompts):   # the mapper may try fewer
        start = user * config.seq_len * width
        rows[start:start + len(prompt) * width] = b"".join(
            token.to_bytes(width, "little") for token in prompt)
    return t.alloc("prompts", content=bytes(rows)), width


def _prompt_token(t, table, width, slot):
    """r13 = the prompt token of the slot in register ``slot`` (r1, r2 overwritten)."""
    b = t.b
    b.li(1, table)
    for _ in range(width):
        b.add(1, 1, slot)
    b.ldb(STAGE, 1, 0)
    b.andi(STAGE, STAGE, 0xFF)
    if width == 2:
        b.ldb(2, 1, 1)
        b.andi(2, 2, 0xFF)
        b.slli(2, 2, 8)
        b.or_(STAGE, STAGE, 2)


def _token(t, layers, links, schedule, prompts):
    """How the first tile takes each entry's token into ``r13``, a :class:`_Source`: on
    a running wafer, :func:`_slot_scheduler`'s.  In a batch run a prompt token comes
    from the table the host loaded (:func:`_prompt_table`), a generated one from the
    classifier (waited for from ``schedule.waits_from``).  Generated tokens arrive
    tagged with their user and wait in a mailbox a user until needed (users finish at
    different positions); each is echoed to the host as it arrives, and ``after_loop``
    takes the last ones, which no entry needs."""
    if isinstance(schedule, Slots):
        return _slot_scheduler(t, layers, links, schedule)
    b = t.b
    prompt_table, width = _prompt_table(t, layers.config, schedule.users, prompts)
    lens = t.alloc("prompt lengths", content=bytes(schedule.prompt_lens))
    waits_from = t.alloc("waits from", content=bytes(schedule.waits_from))
    mailbox = t.alloc("mailbox", 4 * schedule.users, align=4)
    echoed = t.word("echoed", 0)

    def take(received):
        taken, arrived, prompt, done = (t.fresh(name) for name in (
            "take_token", "token_arrived", "prompt_token", "token"))
        _user(t, 5)
        b.li(1, waits_from)
        b.add(1, 1, 5)
        b.ldb(1, 1, 0)
        b.blt(POS, 1, prompt)
        b.slli(6, 5, 2)                        # a token from the loop: this user's mailbox
        b.li(1, mailbox)
        b.add(6, 6, 1)
        b.label(taken)
        b.ld(STAGE, 6, 0)
        b.bne(STAGE, 0, arrived)
        _take_generated(t, links, mailbox, echoed)
        b.beq(0, 0, taken)
        b.label(arrived)
        b.st(0, 6, 0)
        b.andi(STAGE, STAGE, (1 << links.token_bits) - 1)
        b.label(prompt)                        # a prompt position takes the prompt's token
        b.li(1, lens)
        b.add(1, 1, 5)
        b.ldb(1, 1, 0)
        b.bge(POS, 1, done)
        _prompt_token(t, prompt_table, width, SLOT)
        b.label(done)
        received()

    def drain():
        more, finished = t.fresh("drain"), t.fresh("drained")
        b.label(more)
        b.li(1, echoed)
        b.ld(1, 1, 0)
        b.li(2, schedule.sent)
        b.beq(1, 2, finished)
        _take_generated(t, links, mailbox, echoed)
        b.beq(0, 0, more)
        b.label(finished)

    return _Source(take, after_loop=drain)


def _slot_scheduler(t, layers, links, slots):
    """The first tile of a running wafer (:class:`Slots`): its tasks and how it picks
    each entry, a :class:`_Source`.

    Each slot's state is :data:`_SLOT_WORDS` words: active, the next position, the
    prompt's length, tokens still to skip (the classifier's outputs for the prompt's
    positions but its last), tokens still to come, the place of its last entry, and its
    mailbox (a generated token + ``2**token_bits``, or 0).  Three tasks, the lower
    numbered first when the core is free:

    - :data:`TOKEN_TASK` (on ``links.token_color``): a token from the classifier.  It
      skips it, or echoes it to the host and posts it to the mailbox, or, the request's
      last (its ``max_tokens``-th, the stop token, or the first after a cancel), frees
      the slot and echoes it with :data:`LAST_FLAG`;
    - :data:`REQUEST_TASK` (on ``links.request_color``): a request
      (:func:`request_payloads`), into its slot's state and its row of the prompts; or a
      cancel (:func:`cancel_payloads`), after which the slot's next generated token is
      its last;
    - :data:`ENTRY_TASK`: the next entry, for the slot whose entry can go (a prompt
      position, or a generated token in its mailbox) and whose last entry is the oldest
      (the lower slot on a tie); with none, the core waits for a task.  The entry's
      token goes into r13 here, its word into r2, and it ends by activating itself."""
    c, b, bits = layers.config, t.b, links.token_bits
    if links.request_color is None:
        raise ValueError("a running wafer's first tile needs a request color")
    prompts, width = _prompt_table(t, c, slots.users, ())
    state = t.alloc("slots", 4 * _SLOT_WORDS * slots.users, align=4)
    place = t.word("place", 0)
    shift = (4 * _SLOT_WORDS).bit_length() - 1

    def own_payload(register):
        b.li(7, (1 << TAG_BITS) - 1)
        b.and_(register, register, 7)

    def state_of(register, user):
        """register = the address of ``user``'s state (a register)."""
        b.slli(register, user, shift)
        b.li(7, state)
        b.add(register, register, 7)

    def stamp_place(record):
        """The slot whose state is at ``record`` takes the next place (r1 overwritten)."""
        b.li(7, place)
        b.ld(1, 7, 0)
        b.st(1, record, _LAST)
        b.addi(1, 1, 1)
        b.st(1, 7, 0)

    def start(top):
        on_token, on_request = t.fresh("on_token"), t.fresh("on_request")
        b.task(TOKEN_TASK, on_token)
        b.tbind(TOKEN_TASK, links.token_color)
        b.task(REQUEST_TASK, on_request)
        b.tbind(REQUEST_TASK, links.request_color)
        b.task(ENTRY_TASK, top)
        b.texit()

        kept, more, last = t.fresh("kept"), t.fresh("more"), t.fresh("last")
        b.label(on_token)
        b.recv(1, links.token_color)
        b.li(2, (MAX_USERS + 1 << bits) - 1)   # user << token_bits | token
        b.and_(1, 1, 2)
        b.srli(2, 1, bits)
        state_of(3, 2)
        b.ld(4, 3, _SKIP)
        b.beq(4, 0, kept)
        b.addi(4, 4, -1)                      # a prompt position's: its token is known
        b.st(4, 3, _SKIP)
        b.texit()
        b.label(kept)
        b.ld(4, 3, _LEFT)
        b.addi(4, 4, -1)
        b.st(4, 3, _LEFT)
        if slots.stop_token is not None:      # the model ended the text: the request too
            b.li(2, (1 << bits) - 1)
            b.and_(5, 1, 2)
            b.li(2, slots.stop_token)
            b.beq(5, 2, last)
        b.bne(4, 0, more)
        b.label(last)
        b.st(0, 3, _ACTIVE)                   # the request's last token: the slot is free,
        b.li(2, LAST_FLAG)                    # and the host told so
        b.or_(1, 1, 2)
        b.send(1, links.host_color)
        b.texit()
        b.label(more)
        b.send(1, links.host_color)
        b.li(2, (1 << bits) - 1)
        b.and_(1, 1, 2)
        b.addi(1, 1, 1 << bits)
        b.st(1, 3, _MAILBOX)
        b.tact(ENTRY_TASK)
        b.texit()

        prompt_in, cancel, ignored = t.fresh("prompt_in"), t.fresh("cancel"), t.fresh("ignored")
        b.label(on_request)
        for register in (1, 2, 3):            # REQUEST_HEADER
            b.recv(register, links.request_color)
            own_payload(register)
        state_of(4, 1)
        b.beq(2, 0, cancel)
        b.st(0, 4, _POSITION)
        b.st(2, 4, _PROMPT_LEN)
        b.addi(5, 2, -1)
        b.st(5, 4, _SKIP)
        b.st(3, 4, _LEFT)
        b.st(0, 4, _MAILBOX)
        b.li(5, c.seq_len * width)            # the slot's row of the prompts
        b.mul(5, 1, 5)
        b.li(6, prompts)
        b.add(5, 5, 6)
        stamp_place(4)
        b.label(prompt_in)
        b.recv(6, links.request_color)
        b.stb(6, 5, 0)
        if width == 2:
            b.srli(6, 6, 8)
            b.stb(6, 5, 1)
        b.addi(5, 5, width)
        b.bdec(2, prompt_in)
        b.addi(5, 0, 1)
        b.st(5, 4, _ACTIVE)
        b.tact(ENTRY_TASK)
        b.texit()
        b.label(cancel)                       # cancel_payloads: the next token is the last
        b.ld(5, 4, _ACTIVE)
        b.beq(5, 0, ignored)
        b.addi(5, 0, 1)
        b.st(5, 4, _LEFT)
        b.label(ignored)
        b.texit()

    def entry():
        scan, ready, skip, chosen, generated, token = (t.fresh(name) for name in (
            "scan", "ready", "not_ready", "chosen", "generated", "token_in"))
        b.addi(5, 0, -1)                      # the chosen slot's state, -1: none yet
        b.li(6, 0x7FFFFFFF)                   # its last entry's place
        b.li(1, state)
        b.li(4, slots.users)
        b.label(scan)
        b.ld(2, 1, _ACTIVE)
        b.beq(2, 0, skip)
        b.ld(2, 1, _POSITION)
        b.ld(3, 1, _PROMPT_LEN)
        b.blt(2, 3, ready)
        b.ld(2, 1, _MAILBOX)
        b.beq(2, 0, skip)
        b.label(ready)
        b.ld(2, 1, _LAST)
        b.bge(2, 6, skip)
        b.addi(6, 2, 0)
        b.addi(5, 1, 0)
        b.label(skip)
        b.addi(1, 1, 4 * _SLOT_WORDS)
        b.bdec(4, scan)
        b.bge(5, 0, chosen)
        b.texit()                             # nothing can go: wait for a token or a request
        b.label(chosen)
        b.addi(3, 5, 0)                       # r3: the slot's state, r4: its user
        b.li(1, state)
        b.sub(4, 3, 1)
        b.srli(4, 4, shift)
        b.ld(5, 3, _POSITION)
        b.li(1, c.seq_len)                    # r6: the KV-cache slot, user * seq_len + position
        b.mul(6, 4, 1)
        b.add(6, 6, 5)
        b.ld(1, 3, _PROMPT_LEN)
        b.bge(5, 1, generated)
        _prompt_token(t, prompts, width, 6)
        b.beq(0, 0, token)
        b.label(generated)
        b.ld(STAGE, 3, _MAILBOX)
        b.st(0, 3, _MAILBOX)
        b.andi(STAGE, STAGE, (1 << bits) - 1)
        b.label(token)
        b.addi(1, 5, 1)
        b.st(1, 3, _POSITION)
        stamp_place(3)
        b.slli(6, 6, 16)                      # the word: user | position << 5 | slot << 16
        b.slli(5, 5, 5)
        b.or_(2, 4, 5)
        b.or_(2, 2, 6)

    def again():
        b.tact(ENTRY_TASK)
        b.texit()

    return _Source(lambda received: received(), entry=entry, start=start, again=again)


def embedding_stage(params, layers, links, schedule, prompts, part=0, parts=1):
    """The embedding on tiles of its own, for when layer 0's first tile has no room
    for the table: one tile, or a chain of ``parts`` that share the table's rows.  The
    first takes the token (:func:`_token`); with ``parts`` > 1 each tile but the last
    sends the token and then ``h`` on, and the one whose rows hold the token writes
    ``h`` (the others pass it on as it came)."""
    c = layers.config
    t = TileProgram(params, "embedding" + _of(part, parts))
    b = t.b
    h = t.acc("h", c.dim)
    rows = _rows(c.vocab_size, part, parts)
    table = layers.embedding_table(t, rows)
    if part == 0:
        source = _token(t, layers, links, schedule, prompts)
    else:
        def take(received):
            b.recv(STAGE, links.color_in)
            vector.receive(t, h, c.dim, links.color_in)
            received()
        source = _Source(take, entry=_entry_from_input(t, links))
    send = _output(t, layers, links, schedule, [("acc", h, c.dim)],
                   ahead=(STAGE,) if part < parts - 1 else ())

    def body(received, sent):
        source.take(received)
        if parts == 1:
            layers.embed(t, table, STAGE, h)
        else:
            other = t.fresh("other_rows")
            b.li(1, rows.start)
            b.blt(STAGE, 1, other)
            b.li(1, rows.stop)
            b.bge(STAGE, 1, other)
            b.addi(STAGE, STAGE, -rows.start)
            layers.embed(t, table, STAGE, h)
            b.addi(STAGE, STAGE, rows.start)
            b.label(other)
        send()
        sent()

    return _stage(t, schedule, body, source)


def _take_generated(t, links, mailbox, echoed):
    """Receive a generated token, echo it to the host, post it to its user's mailbox
    (as ``token + 2**token_bits``, so that an empty box reads 0) and count it."""
    b, bits = t.b, links.token_bits
    b.recv(1, links.token_color)
    tag = (MAX_USERS + 1 << bits) - 1          # user << token_bits | token
    if tag <= _ANDI_MASK:
        b.andi(1, 1, tag)
    else:
        b.li(2, tag)
        b.and_(1, 1, 2)
    b.send(1, links.host_color)
    b.srli(2, 1, bits)
    b.slli(2, 2, 2)
    b.li(3, mailbox)
    b.add(2, 2, 3)
    b.andi(1, 1, (1 << bits) - 1)
    b.addi(1, 1, 1 << bits)
    b.st(1, 2, 0)
    b.li(2, echoed)
    b.ld(1, 2, 0)
    b.addi(1, 1, 1)
    b.st(1, 2, 0)


def _source_in_memory(t, layers, out):
    """``source`` for an attention block on the tile that computed q, k and v."""
    size = element_bytes(layers.dtype)
    return lambda d, name, offset, length: t.mem(d, out[name] + offset * size, length,
                                                 dtype=layers.dtype)


def attention_stage(params, layers, layer, links, schedule, prompts=None):
    """A layer's whole attention block on one tile; given ``prompts``, the embedding
    before it (:func:`_input`)."""
    c = layers.config
    t, h, acc = _attention_tile(params, layers, _name(f"layer {layer} attention", prompts))
    source = _input(t, layers, links, schedule, h, prompts)
    qkv, out = layers.qkv(t, layer, h, acc, links.loop_color)
    attend = layers.attention(t, layer, h, acc, links.loop_color, schedule.users)
    send = _output(t, layers, links, schedule, [("acc", h, c.dim)])

    def body(received, sent):
        source.take(received)
        qkv()
        attend(_source_in_memory(t, layers, out), lambda: None)
        send()
        sent()

    return _stage(t, schedule, body, source)


def qkv_stage(params, layers, layer, links, schedule, prompts=None):
    """The first tile of a layer whose attention block takes two: RMSNorm, q, k, v and
    RoPE; it sends q, k, v and then the residual on.  Given ``prompts``, the embedding
    before it (:func:`_input`)."""
    c = layers.config
    t, h, acc = _attention_tile(params, layers, _name(f"layer {layer} qkv", prompts))
    source = _input(t, layers, links, schedule, h, prompts)
    qkv, out = layers.qkv(t, layer, h, acc, links.loop_color)
    send = _output(t, layers, links, schedule, [("mem", out[name], length) for name, length in
                                      (("q", c.dim), ("k", c.kv_dim), ("v", c.kv_dim))]
                   + [("acc", h, c.dim)])

    def body(received, sent):
        source.take(received)
        qkv()
        send()
        sent()

    return _stage(t, schedule, body, source)


def split_attention_stage(params, layers, layer, links, schedule, part=0, parts=1):
    """The second tile of a two-tile attention block, or with ``parts`` > 1 slice ``part``
    of the block's heads (the layers' ``attention``): it takes q, k, v and the residual
    from :func:`qkv_stage` (every slice takes them all: a multicast), keeps the KV
    cache, and the last ends the block."""
    c = layers.config
    t, h, acc = _attention_tile(params, layers, f"layer {layer} attention" + _of(part, parts))
    source = _input(t, layers, links, schedule, h)
    attend = layers.attention(t, layer, h, acc, links.loop_color, schedule.users, part, parts,
                              links)
    send = _output(t, layers, links, schedule, [("acc", h, c.dim)]) if part == parts - 1 \
        else None
    if parts == 1:                            # q, k, v straight from the fabric
        def qkv_source(d, name, offset, length):
            t.fin(d, length, links.color_in, dtype=layers.wire)
        receive = None
    else:                                     # a slice uses some of them: all into SRAM first
        size, lengths = element_bytes(layers.dtype), (c.dim, c.kv_dim, c.kv_dim)
        buffer = t.alloc("q k v in", size * sum(lengths), align=2)
        qkv_source = _source_in_memory(t, layers, {"q": buffer, "k": buffer + size * c.dim,
                                               "v": buffer + size * (c.dim + c.kv_dim)})

        def receive():
            t.mem(0, buffer, sum(lengths), dtype=layers.dtype)
            t.fin(1, sum(lengths), links.color_in, dtype=layers.wire)
            t.b.vmov(0, 1, float_=layers.dtype != Dtype.INT)

    def body(received, sent):
        if receive:
            receive()
        attend(qkv_source, lambda: source.take(received))
        if send:
            send()
        sent()

    return _stage(t, schedule, body, source)


def ffn_stage(params, layers, layer, links, schedule, part=0, parts=1):
    """A layer's feed-forward block, or with ``parts`` > 1 the slice ``part`` of it
    (the layers' ``ffn``); every slice takes the residual (a multicast), and the last
    sends it on."""
    c = layers.config
    t = TileProgram(params, f"layer {layer} feed-forward" + _of(part, parts))
    h = t.acc("h", c.dim)
    ffn = layers.ffn(t, layer, part, parts, h, links)
    source = _input(t, layers, links, schedule, h)
    send = _output(t, layers, links, schedule, [("acc", h, c.dim)]) if part == parts - 1 \
        else None

    def body(received, sent):
        source.take(received)
        ffn(send)
        sent()

    return _stage(t, schedule, body, source)


def classifier_stage(params, layers, links, schedule, part=0, parts=1):
    """The classifier, or with ``parts`` > 1 the slice ``part`` of its rows: every slice
    takes the residual (a multicast) and finds its rows' largest logit; each but the
    first takes the running maximum of the slices before it (its value's order key and
    its index, two wavelets on ``links.reduce_colors``), which wins a tie, and each but
    the last passes it on.  The last sends the token to the first tile, tagged with
    its user."""
    c, last = layers.config, part == parts - 1
    t = TileProgram(params, "classifier" + _of(part, parts))
    b = t.b
    h = t.acc("h", c.dim)
    rows = _rows(c.vocab_size, part, parts)
    chunks = [slice(first, min(first + CLASSIFIER_CHUNK, rows.stop))
              for first in range(rows.start, rows.stop, CLASSIFIER_CHUNK)]
    fold = layers.classifier(t, chunks, h, links.loop_color)
    # Which positions' tokens go back: from each user's last prompt position, or on a
    # running wafer every position's (the first tile skips the prompt's).
    first_sent = (t.alloc("first sent", content=bytes(schedule.first_sent))
                  if last and isinstance(schedule, Schedule) else None)
    best, best_index = ARG0, ARG1             # the kernels in between leave them alone
    source = _input(t, layers, links, schedule, h)

    def body(received, sent):
        source.take(received)
        b.li(best, INT32_MIN)
        b.addi(best_index, 0, 0)
        fold(best, best_index)
        if part:
            later = t.fresh("later_rows")
            before = links.reduce_colors[(part - 1) % 2]
            b.recv(1, before)
            b.recv(2, before)
            b.blt(1, best, later)
            b.addi(best, 1, 0)
            b.addi(best_index, 2, 0)
            b.label(later)
        if not last:
            b.send(best, links.reduce_colors[part % 2])
            b.send(best_index, links.reduce_colors[part % 2])
            sent()
            return
        skip = t.fresh("prompt")
        _user(t, 2)
        if first_sent is not None:
            b.li(1, first_sent)
            b.add(1, 1, 2)
            b.ldb(1, 1, 0)
            b.blt(POS, 1, skip)               # a prompt position: its token is known
        b.slli(2, 2, links.token_bits)        # tagged with its user
        b.or_(2, 2, best_index)
        b.li(1, pack_addressed(*links.embed_tile, 0))
        b.or_(1, 1, 2)
        b.send(1, links.token_color)
        b.label(skip)
        sent()

    return _stage(t, schedule, body, source)


def halt_program(params):
    """For tiles that the plan does not use."""
    t = TileProgram(params, "unused")
    t.b.halt()
    return t
