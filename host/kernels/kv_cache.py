"""A layer's KV cache in a tile's data SRAM, and the code that appends to it.

Every user's positions share one cache, user after user: slot ``s = user *
seq_len + position`` (register ``r14``).  Keys are kept transposed, so that a
head's scores are one vector operation a dimension: row ``j`` holds dimension
``j`` of every slot (``row`` elements).  Values are kept per KV head, a slot's
``head_dim`` values together, so that the weighted sum streams them.  The
layout is the same for int8 and 16-bit elements; only the element's size
differs.  A tile may keep some of the KV heads only (``kv_heads``, a range): its
part of a layer's attention (:mod:`host.kernels.half_layers`).
"""

from host.asm import STRIDE_RANGE
from host.kernels.program import SLOT, FitError
from rtl.isa import Dtype, element_bytes

__all__ = ["KVCache"]


class KVCache:
    def __init__(self, t, config, users, dtype=Dtype.INT, kv_heads=None):
        self.t, self.config, self.dtype = t, config, dtype
        self.kv_heads = range(config.n_kv_heads) if kv_heads is None else kv_heads
        self.size = element_bytes(dtype)
        self.row = users * config.seq_len              # slots
        if self.row * self.size > STRIDE_RANGE[1]:     # the keys' rows are a stride apart
            raise FitError(f"{t.name}: {users} users of {config.seq_len} positions make key "
                           f"rows of {self.row * self.size} bytes, past a descriptor's stride "
                           f"of at most {STRIDE_RANGE[1]}")
        self.dims = len(self.kv_heads) * config.head_dim
        self.keys = t.alloc("key cache", self.dims * self.row * self.size)
        self.values = t.alloc("value cache", self.row * self.dims * self.size)

    def _block(self, kv_head):
        return (kv_head - self.kv_heads.start) * self.config.head_dim * self.row * self.size

    def keys_of(self, kv_head):
        """The address of ``kv_head``'s first key row."""
        return self.keys + self._block(kv_head)

    def values_of(self, kv_head):
        """The address of ``kv_head``'s block of values (slot ``s`` at ``s * head_dim``)."""
        return self.values + self._block(kv_head)

    def append(self, source):
        """Code that writes the current slot's k and v: ``source(d, name, offset, length)``
        points descriptor ``d`` at ``length`` elements of ``"k"`` or ``"v"`` from element
        ``offset`` (in data SRAM or on the fabric), in the order they arrive."""
        t, c, b, size = self.t, self.config, self.t.b, self.size
        float_ = self.dtype != Dtype.INT
        b.li(2, self.keys)
        if size > 1:
            b.add(2, 2, SLOT)
        b.add(2, 2, SLOT)
        t.mem(0, ("r", 2), self.dims, self.row * size, dtype=self.dtype)  # the slot's column
        source(1, "k", self.kv_heads.start * c.head_dim, self.dims)
        b.vmov(0, 1, float_=float_)
        for kv_head in self.kv_heads:                # its row of each head's value block
            b.li(1, c.head_dim * size)
            b.mul(2, SLOT, 1)
            b.li(1, self.values_of(kv_head))
            b.add(2, 2, 1)
            t.mem(0, ("r", 2), c.head_dim, dtype=self.dtype)
            source(1, "v", kv_head * c.head_dim, c.head_dim)
            b.vmov(0, 1, float_=float_)
