"""Stage programs: one tile's whole loop over the tokens of a generation.

A stage takes the residual stream ``h`` (``dim`` wavelets, int32, Q7) on one
color, runs its part of the model and sends the new ``h`` on another; the first
stage starts from a token instead, and the classifier stage ends with one.  The
first stage is layer 0's first tile, which also looks the token up in the
embedding table (a stage of its own would hold an entry in the pipeline for a
lookup of a few dozen cycles), or when the table does not fit there an
embedding tile.
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

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from host.kernels import vector as k
from host.kernels.program import ARG0, ARG1, POS, SLOT, STAGE, TileProgram
from host.model import exp_table, silu_table
from rtl.isa import Counter
from rtl.wavelet import pack_addressed

__all__ = ["Links", "Schedule", "LOG_WORDS", "read_log", "MAX_USERS", "TOKEN_BITS", "untag",
           "embedding_stage", "attention_stage", "qkv_stage", "split_attention_stage", "ffn_stage",
           "classifier_stage", "halt_program"]

LOG_WORDS = 4
#: Words of an entry's record: the entry, then its log.
RECORD_WORDS = 1 + LOG_WORDS
#: Users a schedule may hold: a generated token travels as ``user << 8 | token`` in the
#: 13 bits that ``ANDI`` keeps.
MAX_USERS = 31
#: Bits of the token below the user in a tagged token (:func:`untag`).
TOKEN_BITS = 8
_TAG_MASK = (MAX_USERS + 1 << TOKEN_BITS) - 1


def untag(data):
    """``(user, token)`` of a tagged generated token, as the host receives it."""
    return data >> TOKEN_BITS & MAX_USERS, data & (1 << TOKEN_BITS) - 1


@dataclass(frozen=True)
class Links:
    """The colors and places a stage talks to."""
    color_in: int                # h (or, for the tile that embeds, unused)
    color_out: int               # h (or, for the classifier, unused)
    token_color: int             # XY-addressed: generated tokens back to the tile that embeds
    host_color: int              # that tile's generated tokens, out to the host
    embed_tile: tuple            # where that tile is (the tokens' destination)
    loop_color: int              # routed from the tile's ramp back to it (streamed GEMVs)
    reduce_colors: tuple = ()    # partial sums between the slices of a region, alternating


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


def _records(schedule):
    """The schedule as the stages keep it: a record an entry, a word ``user | position
    << 8 | slot << 16`` and then the entry's log (:data:`LOG_WORDS` words)."""
    records = bytearray()
    for user, position in schedule.entries:
        slot = user * schedule.seq_len + position
        assert slot < 1 << 16, "a slot takes 16 bits of the entry's word"
        records += (user | position << 8 | slot << 16).to_bytes(4, "little")
        records += bytes(4 * LOG_WORDS)
    return bytes(records)


def read_log(memory, address, entries):
    """The logs of ``entries`` records at ``address`` of a data memory: an array
    (entries, :data:`LOG_WORDS`)."""
    records = np.frombuffer(memory, np.uint32, offset=address, count=RECORD_WORDS * entries)
    return records.reshape(entries, RECORD_WORDS)[:, 1:].astype(np.int64)


def _loop(t, schedule, body):
    """``body()`` once per entry of ``schedule``, stamping the log (module docstring).
    The records' address; the word ``cursor`` holds the current record's."""
    b = t.b
    records = t.alloc("entries", content=_records(schedule), align=4)
    cursor = t.word("cursor", records)
    top = t.fresh("entry")
    b.label(top)
    _cursor(t, 1)
    b.ld(2, 1, 0)
    b.srli(POS, 2, 8)
    b.andi(POS, POS, 0xFF)
    b.srli(SLOT, 2, 16)
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


def _user(t, register):
    """The current entry's user, into ``register``."""
    _cursor(t, register)
    t.b.ld(register, register, 0)
    t.b.andi(register, register, 0xFF)


def _stage(t, schedule, body, after_loop=None):
    """The stage's loop over the schedule, ``after_loop()`` if given, then HALT: the
    program and its log's address."""
    log = _loop(t, schedule, body)
    if after_loop:
        after_loop()
    t.b.halt()
    return t, log


def _name(stage, prompts):
    """A stage's name, which says when it also embeds."""
    return stage if prompts is None else f"embedding + {stage}"


def _attention_tile(params, qmodel, name):
    """A tile program with the residual's and the products' accumulators reserved."""
    c = qmodel.config
    t = TileProgram(params, name)
    return t, t.acc("h", c.dim), t.acc("products", max(c.dim, c.kv_dim))


def _stamp(t, counter, offset):
    """Store a counter at the current entry's log + ``offset``."""
    t.b.csrr(2, counter)
    _cursor(t, 1)
    t.b.st(2, 1, 4 + offset)


def _output(t, links, sources):
    """Code that sends a stage's output ``sources`` (as for
    :func:`host.kernels.vector.send_behind`) on ``links.color_out`` while the stage
    goes on: the time the next step takes to take it in is not this stage's.  Its
    accumulators are reserved here."""
    out = t.acc("out", sum(length for _, _, length in sources))
    return lambda: k.send_behind(t, sources, out, links.color_out)


def _input(t, qmodel, links, schedule, h, prompts=None):
    """How a stage takes each entry's input into acc[h]: ``(take(received), after_loop)``.

    Without ``prompts``: the residual stream from the step before.  With them (layer
    0's first tile): the entry's token, looked up in the embedding table: a prompt
    token from the table the host loaded (``prompts[u]``, row ``u`` of ``seq_len``
    bytes, indexed by the slot), or the token the classifier generated for that user
    (waited for from ``schedule.waits_from``).  Generated tokens arrive tagged with
    their user (``user << 8 | token``) and wait in a mailbox a user until needed
    (users finish at different positions); each is echoed to the host as it arrives,
    and ``after_loop`` takes the last ones, which no entry needs."""
    c, b = qmodel.config, t.b
    if prompts is None:
        def receive(received):
            k.receive(t, h, c.dim, links.color_in)
            received()
        return receive, None
    table = t.alloc("embedding", content=qmodel.embedding.reshape(-1))
    rows = bytearray(schedule.users * c.seq_len)
    for user, prompt in zip(range(schedule.users), prompts):   # the mapper may try fewer
        rows[user * c.seq_len:user * c.seq_len + len(prompt)] = bytes(prompt)
    prompt_table = t.alloc("prompts", content=bytes(rows))
    lens = t.alloc("prompt lengths", content=bytes(schedule.prompt_lens))
    waits_from = t.alloc("waits from", content=bytes(schedule.waits_from))
    mailbox = t.alloc("mailbox", 4 * schedule.users, align=4)
    echoed = t.word("echoed", 0)

    def embed(received):
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
        b.andi(STAGE, STAGE, 0xFF)
        b.label(prompt)                        # a prompt position takes the prompt's token
        b.li(1, lens)
        b.add(1, 1, 5)
        b.ldb(1, 1, 0)
        b.bge(POS, 1, done)
        b.li(1, prompt_table)
        b.add(1, 1, SLOT)
        b.ldb(STAGE, 1, 0)
        b.andi(STAGE, STAGE, 0xFF)
        b.label(done)
        received()
        k.embedding(t, table, c.dim, STAGE, qmodel.embed_m, qmodel.embed_shift, h)

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

    return embed, drain


def embedding_stage(params, qmodel, links, schedule, prompts):
    """The embedding on a tile of its own, for when layer 0's first tile has no room
    for the table (:func:`_input`)."""
    c = qmodel.config
    t = TileProgram(params, "embedding")
    h = t.acc("h", c.dim)
    take, after_loop = _input(t, qmodel, links, schedule, h, prompts)
    send = _output(t, links, [("acc", h, c.dim)])

    def body(received, sent):
        take(received)
        send()
        sent()

    return _stage(t, schedule, body, after_loop)


def _take_generated(t, links, mailbox, echoed):
    """Receive a generated token, echo it to the host, post it to its user's mailbox
    (as ``token + 256``, so that an empty box reads 0) and count it."""
    b = t.b
    b.recv(1, links.token_color)
    b.andi(1, 1, _TAG_MASK)                    # user << TOKEN_BITS | token
    b.send(1, links.host_color)
    b.srli(2, 1, TOKEN_BITS)
    b.slli(2, 2, 2)
    b.li(3, mailbox)
    b.add(2, 2, 3)
    b.andi(1, 1, 0xFF)
    b.addi(1, 1, 256)
    b.st(1, 2, 0)
    b.li(2, echoed)
    b.ld(1, 2, 0)
    b.addi(1, 1, 1)
    b.st(1, 2, 0)


def attention_stage(params, qmodel, layer, links, schedule, prompts=None):
    """A layer's whole attention block on one tile; given ``prompts``, the embedding
    before it (:func:`_input`)."""
    c = qmodel.config
    t, h, acc = _attention_tile(params, qmodel, _name(f"layer {layer} attention", prompts))
    take, after_loop = _input(t, qmodel, links, schedule, h, prompts)
    qkv = _qkv_part(t, qmodel, layer, h, acc, links.loop_color)
    attend = _attention_part(t, qmodel, layer, h, acc, links.loop_color, schedule.users)
    send = _output(t, links, [("acc", h, c.dim)])

    def body(received, sent):
        take(received)
        qkv()
        attend(lambda d, name, offset, length: t.mem(d, qkv.out[name] + offset, length))
        send()
        sent()

    return _stage(t, schedule, body, after_loop)


def qkv_stage(params, qmodel, layer, links, schedule, prompts=None):
    """The first tile of a layer whose attention block takes two: RMSNorm, q, k, v and
    RoPE; it sends q, k, v (int8, as wavelets) and then the residual on.  Given
    ``prompts``, the embedding before it (:func:`_input`)."""
    c = qmodel.config
    t, h, acc = _attention_tile(params, qmodel, _name(f"layer {layer} qkv", prompts))
    take, after_loop = _input(t, qmodel, links, schedule, h, prompts)
    qkv = _qkv_part(t, qmodel, layer, h, acc, links.loop_color)
    send = _output(t, links, [("mem", qkv.out[name], length) for name, length in
                              (("q", c.dim), ("k", c.kv_dim), ("v", c.kv_dim))]
                   + [("acc", h, c.dim)])

    def body(received, sent):
        take(received)
        qkv()
        send()
        sent()

    return _stage(t, schedule, body, after_loop)


def split_attention_stage(params, qmodel, layer, links, schedule):
    """The second tile of a two-tile attention block: it takes q, k, v and the residual
    from :func:`qkv_stage`, keeps the KV cache, and ends the block."""
    c = qmodel.config
    t, h, acc = _attention_tile(params, qmodel, f"layer {layer} attention")
    take, _ = _input(t, qmodel, links, schedule, h)
    attend = _attention_part(t, qmodel, layer, h, acc, links.loop_color, schedule.users)
    send = _output(t, links, [("acc", h, c.dim)])

    def body(received, sent):
        attend(lambda d, name, offset, length: t.fin(d, length, links.color_in),
               lambda: take(received))
        send()
        sent()

    return _stage(t, schedule, body)


class _Part:
    """Code emitted when called, with the data addresses it leaves results at."""

    def __init__(self, emit, out):
        self.emit, self.out = emit, out

    def __call__(self, *args):
        self.emit(*args)


def _qkv_part(t, qmodel, layer, h, acc, loop):
    """RMSNorm of acc[h], then q, k, v (int8 Q5) with q and k rotated, in data SRAM."""
    c, w = qmodel.config, qmodel.layers[layer]
    hd, kv = c.head_dim, c.kv_dim
    wq, wk, wv = (t.alloc(name, content=_columns(w[name].weight, hd if name != "wv" else None))
                  for name in ("wq", "wk", "wv"))
    gain = t.alloc("attn_norm", content=w["attn_norm"].gain)
    cos = t.alloc("cos", content=qmodel.cos.reshape(-1))
    sin = t.alloc("sin", content=qmodel.sin.reshape(-1))
    x = t.alloc("x", c.dim)
    raw = t.alloc("q k raw", c.dim + kv)
    out = {"q": t.alloc("q", c.dim), "k": t.alloc("k", kv), "v": t.alloc("v", kv)}

    def emit():
        k.rmsnorm(t, h, c.dim, gain, w["attn_norm"].shift, x, acc)
        for weight, rows, name, dst in ((wq, c.dim, "wq", raw), (wk, kv, "wk", raw + c.dim),
                                        (wv, kv, "wv", out["v"])):
            k.gemv(t, weight, rows, c.dim, x, acc, loop=loop)
            k.requant(t, acc, rows, w[name].m, w[name].shift, False, ("mem", dst))
        k.rope(t, raw, c.n_heads, hd, cos, sin, out["q"], 1, 0, acc)
        k.rope(t, raw + c.dim, c.n_kv_heads, hd, cos, sin, out["k"], 1, 0, acc)

    return _Part(emit, out)


def _attention_part(t, qmodel, layer, h, acc, loop, users):
    """Append k and v to the KV cache, attend over it per head, ``wo``, the residual.
    Called with ``source(d, name, offset, length)``, which points descriptor ``d`` at
    ``length`` elements of q, k or v from ``offset`` (in data SRAM or on the fabric), and
    optionally ``before_residual()``, which brings the residual into acc[h]."""
    c, w = qmodel.config, qmodel.layers[layer]
    hd, kv, seq, b = c.head_dim, c.kv_dim, c.seq_len, t.b
    wo = t.alloc("wo", content=_columns(w["wo"].weight))
    exp = t.table16("exp", exp_table())
    row = users * seq                             # every user's positions, user after user
    keys = t.alloc("key cache", kv * row)         # row j = dimension j, every slot
    values = t.alloc("value cache", row * kv)     # per kv head, row s = slot s
    q = t.alloc("q rotated", c.dim)
    heads = t.alloc("attention out", c.dim)
    probs = t.alloc("probabilities", seq)
    scores = t.acc("scores", seq)
    out = t.acc("head out", hd)

    def emit(source, before_residual=None):
        t.mem(0, q, c.dim)
        source(1, "q", 0, c.dim)
        b.vmov(0, 1)
        b.li(2, keys)
        b.add(2, 2, SLOT)
        t.mem(0, ("r", 2), kv, row)                # this slot's column of the key cache
        source(1, "k", 0, kv)
        b.vmov(0, 1)
        for kv_head in range(c.n_kv_heads):        # its row of each head's value block
            b.li(1, hd)
            b.mul(2, SLOT, 1)
            b.li(1, values + kv_head * hd * row)
            b.add(2, 2, 1)
            t.mem(0, ("r", 2), hd)
            source(1, "v", kv_head * hd, hd)
            b.vmov(0, 1)
        if before_residual:
            before_residual()
        b.addi(STAGE, POS, 1)                      # positions 0..pos
        group = c.n_heads // c.n_kv_heads
        for head in range(c.n_heads):
            kv_head = head // group
            k.attention_head(t, q + head * hd, keys + kv_head * hd * row, row,
                             values + kv_head * hd * row, STAGE, heads + head * hd, scores,
                             out, probs, exp, qmodel.score_scale, hd, loop)
        k.gemv(t, wo, c.dim, c.dim, heads, acc, loop=loop)
        k.requant(t, acc, c.dim, w["wo"].m, w["wo"].shift, True, ("acc", acc))
        k.residual_add(t, h, acc, c.dim)

    return _Part(emit, {})


def _columns(weight, head_dim=None):
    """A matrix in column-major order, for :func:`host.kernels.vector.gemv`.  With
    ``head_dim``, each head's rows are reordered to put the first members of the RoPE
    pairs before the second (what :func:`host.kernels.vector.rope` reads)."""
    if head_dim is not None:
        order = np.concatenate([np.concatenate([np.arange(s, s + head_dim, 2),
                                                np.arange(s + 1, s + head_dim, 2)])
                                for s in range(0, weight.shape[0], head_dim)])
        weight = weight[order]
    return np.ascontiguousarray(weight.T).reshape(-1)


def ffn_stage(params, qmodel, layer, links, schedule, part=0, parts=1):
    """A layer's feed-forward block, or with ``parts`` > 1 the slice ``part`` of it: the
    hidden units ``part * hidden / parts`` onwards, their rows of ``w1`` and ``w3`` and
    their columns of ``w2``.  Every slice takes the residual (a multicast), and the
    slices' partial sums of ``w2 y`` flow from slice to slice on ``links.reduce_colors``
    (:func:`host.kernels.vector.reduce_chain`); the last adds them up, requantises, adds
    the residual and sends it on."""
    c, w = qmodel.config, qmodel.layers[layer]
    units = c.hidden_dim // parts
    rows = slice(part * units, (part + 1) * units)
    name = f"layer {layer} feed-forward" + (f" {part + 1}/{parts}" if parts > 1 else "")
    t = TileProgram(params, name)
    w1, w3 = (t.alloc(n, content=_columns(w[n].weight[rows])) for n in ("w1", "w3"))
    w2 = t.alloc("w2", content=_columns(w["w2"].weight[:, rows]))
    gain = t.alloc("ffn_norm", content=w["ffn_norm"].gain)
    silu = t.table16("silu", silu_table())
    x = t.alloc("x", c.dim)
    hidden = t.alloc("hidden", units)
    h = t.acc("h", c.dim)
    gate = t.acc("gate", max(units, c.dim))   # also the norm's scratch and the partial sum
    up = t.acc("up", units)
    last = part == parts - 1
    take, _ = _input(t, qmodel, links, schedule, h)
    send = _output(t, links, [("acc", h, c.dim)]) if last else None

    def body(received, sent):
        take(received)
        k.rmsnorm(t, h, c.dim, gain, w["ffn_norm"].shift, x, gate)
        for weight, n, acc in ((w1, "w1", gate), (w3, "w3", up)):
            k.gemv(t, weight, units, c.dim, x, acc, loop=links.loop_color)
            k.requant(t, acc, units, w[n].m, w[n].shift, True, ("acc", acc))
        k.swiglu(t, gate, up, units, silu, hidden)
        k.gemv(t, w2, c.dim, units, hidden, gate, loop=links.loop_color)
        before = links.reduce_colors[(part - 1) % 2] if part else None
        if not last:
            k.reduce_chain(t, gate, c.dim, before, links.reduce_colors[part % 2])
        else:
            if before is not None:
                k.accumulate(t, gate, c.dim, before)
            k.requant(t, gate, c.dim, w["w2"].m, w["w2"].shift, True, ("acc", gate))
            k.residual_add(t, h, gate, c.dim)
            send()
        sent()

    return _stage(t, schedule, body)


#: Classifier rows per accumulator pass.
CLASSIFIER_CHUNK = 128


def classifier_stage(params, qmodel, links, schedule):
    c = qmodel.config
    t = TileProgram(params, "classifier")
    chunk = min(CLASSIFIER_CHUNK, c.vocab_size)
    chunks = -(-c.vocab_size // chunk)
    weights = []
    for n in range(chunks):
        rows = qmodel.wcls[n * chunk:(n + 1) * chunk]
        weights.append((t.alloc(f"wcls {n}", content=_columns(rows)), len(rows)))
    gain = t.alloc("final_norm", content=qmodel.final_norm.gain)
    first_sent = t.alloc("first sent", content=bytes(schedule.first_sent))
    x = t.alloc("x", c.dim)
    h = t.acc("h", c.dim)
    logits = t.acc("logits", max(chunk, c.dim))       # also the norm's scratch
    b = t.b
    best, best_index = ARG0, ARG1             # the kernels in between leave them alone
    take, _ = _input(t, qmodel, links, schedule, h)

    def body(received, sent):
        take(received)
        k.rmsnorm(t, h, c.dim, gain, qmodel.final_norm.shift, x, logits)
        b.li(best, -(1 << 31))
        b.addi(best_index, 0, 0)
        for n, (address, rows) in enumerate(weights):
            k.gemv(t, address, rows, c.dim, x, logits, loop=links.loop_color)
            k.argmax(t, logits, rows, n * chunk, best, best_index)
        skip = t.fresh("prompt")
        _user(t, 2)
        b.li(1, first_sent)
        b.add(1, 1, 2)
        b.ldb(1, 1, 0)
        b.blt(POS, 1, skip)                   # a prompt position: its token is known
        b.slli(2, 2, TOKEN_BITS)              # tagged with its user
        b.or_(2, 2, best_index)
        b.li(1, pack_addressed(*links.embed_tile, 0))
        b.or_(1, 1, 2)
        b.send(1, links.token_color)
        b.label(skip)
        sent()

    return _stage(t, schedule, body)


def halt_program(params):
    """For tiles that the plan does not use."""
    t = TileProgram(params, "unused")
    t.b.halt()
    return t
