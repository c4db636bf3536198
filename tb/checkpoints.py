"""llama2.c checkpoints for the tests, written independently of the reader
(:func:`host.model.load_llama2c`)."""

import struct

import numpy as np

__all__ = ["write_llama2c"]


def write_llama2c(path, config, weights, shared):
    """A llama2.c v0 checkpoint of ``weights`` at ``path``; ``shared``: the classifier is the
    embedding table (a positive vocabulary size), else stored after the RoPE tables."""
    header = [config.dim, config.hidden_dim, config.n_layers, config.n_heads, config.n_kv_heads,
              config.vocab_size if shared else -config.vocab_size, config.seq_len]
    parts = [weights.embedding, weights.attn_norm, weights.wq, weights.wk, weights.wv,
             weights.wo, weights.ffn_norm, weights.w1, weights.w2, weights.w3,
             weights.final_norm,
             np.zeros(config.seq_len * config.head_dim, np.float32)]   # freq_cis_real, _imag
    if not shared:
        parts.append(weights.wcls)
    path.write_bytes(struct.pack("<7i", *header)
                     + b"".join(np.asarray(p, np.float32).tobytes() for p in parts))
