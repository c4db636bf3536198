"""Tile programs in the tessera ISA: the kernels of the tiny LLM and the stages built
from them.  :mod:`.program` holds one tile's program under construction,
:mod:`.vector` the kernels, :mod:`.stages` the per-tile loops of a generation."""
