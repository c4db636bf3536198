"""What ``tessera run`` runs: a model, the numbers the wafer computes it in, and its tokens.

Two kinds of model:

- a llama2.c checkpoint with its tokenizer (:mod:`host.tokenizer`): by default the
  shipped stories260K (``host/models/``), at fp16 or bf16 (:mod:`host.half_model`), or
  with group-wise int8 weights on the float lanes (:mod:`host.int8_model`).
  Its text ends where the model emits BOS, as llama2.c's does; an empty prompt
  starts from BOS alone.
- the seeded random model of :mod:`host.model` (``--model seeded``, or ``--layers``, or
  ``--weights`` with a tessera weight file), with byte tokens, in the integer
  reference's int8 or at fp16 or bf16.

The KV caches are sized by the context (:meth:`Workload.sized`): for a llama2.c
model the positions the run needs, unless ``--context`` says more; the seeded model
keeps its own unless told.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from host import model as toy
from host.half_model import DTYPES as HALF_DTYPES
from host.half_model import HalfModel
from host.int8_model import Int8Model
from host.tokenizer import BOS, Tokenizer, TokenizerError

__all__ = ["Workload", "WorkloadError", "load", "MODELS", "SEEDED", "DTYPES"]

MODELS_DIR = Path(__file__).parent / "models"
#: The shipped llama2.c models, by name: checkpoint and tokenizer.
MODELS = {"stories260K": ("stories260K.bin", "tok512.bin")}
SEEDED = "seeded"
DTYPES = (*HALF_DTYPES, "int8")
#: Prompts when none is given: llama2.c starts from BOS; the byte model needs a text.
DEFAULT_PROMPTS = {"llama2c": "", "bytes": "Wafer-scale"}


class WorkloadError(ValueError):
    """A model, tokenizer, dtype or context that the run cannot take."""


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str                    # "llama2c" (its tokenizer) or "bytes" (byte tokens)
    dtype: str
    config: object               # host.model.ModelConfig, its seq_len the context
    weights: object              # host.model.FloatWeights
    tokenizer: object = None     # host.tokenizer.Tokenizer, for a llama2.c model

    @property
    def default_prompt(self):
        return DEFAULT_PROMPTS[self.kind]

    @property
    def reference_name(self):
        """What the wafer's tokens are checked against."""
        if self.dtype != "int8":
            return self.dtype
        return "group int8" if self.floating else "quantised"

    @property
    def floating(self):
        """Whether the wafer computes it on the float lanes: a 16-bit float dtype, or a
        llama2.c model's group-wise int8 weights."""
        return self.dtype != "int8" or self.kind == "llama2c"

    def encode(self, text):
        if self.tokenizer is None:
            if not text:
                raise WorkloadError("the prompt is empty: the byte model needs a token to "
                                    "start from")
            return toy.encode(text)
        try:
            return self.tokenizer.encode(text)
        except TokenizerError as error:
            raise WorkloadError(str(error)) from None

    def text(self, tokens, prompt):
        """The ``tokens`` generated after ``prompt`` as text: for a llama2.c model, up to
        the first BOS."""
        if self.tokenizer is None:
            return toy.decode(tokens)
        shown = tokens[:tokens.index(self.stop_token)] if self.ended(tokens) else tokens
        return self.tokenizer.decode(shown, after=prompt[-1])

    @property
    def stop_token(self):
        """The token with which the model ends a text: a llama2.c model's BOS, as run.c
        stops at it; the byte model has none (None)."""
        return None if self.tokenizer is None else BOS

    def until_stop(self, tokens):
        """``tokens`` up to the first :attr:`stop_token`, itself included: what a request
        gets of them on a running wafer, which ends it there."""
        if self.stop_token in tokens:
            return tokens[:tokens.index(self.stop_token) + 1]
        return tokens

    def ended(self, tokens):
        """Whether the model ended the text (:attr:`stop_token`)."""
        return self.stop_token is not None and self.stop_token in tokens

    def sized(self, needed, context=None):
        """This workload with a context of ``context`` positions (None: ``needed`` for a
        llama2.c model, the model's own for the seeded one), checked against the
        ``needed`` positions and the model's own context."""
        own = self.config.seq_len
        if context is None:
            context = needed if self.kind == "llama2c" else own
        if context < 1:
            raise WorkloadError(f"--context must be at least 1, not {context}")
        if context > own:
            raise WorkloadError(f"--context {context} exceeds the model's context of {own}")
        if needed > context:
            raise WorkloadError(f"the prompt and the new tokens take {needed} positions, "
                                f"more than the context of {context}")
        return dataclasses.replace(self, config=dataclasses.replace(self.config,
                                                                    seq_len=context))

    def reference(self):
        """The wafer's arithmetic on this model, to the bit."""
        if not self.floating:
            return toy.QuantModel(self.config, self.weights)
        if self.dtype == "int8":
            return Int8Model(self.config, self.weights)
        return HalfModel(self.config, self.weights, self.dtype)

    def float_model(self):
        return toy.FloatModel(self.config, self.weights)


def load(name=None, tokenizer=None, dtype=None, weights=None, layers=None, seed=0):
    """The workload of ``tessera run``'s options: ``name`` (``--model``: a shipped model,
    ``seeded`` or a llama2.c checkpoint file; by default stories260K, or the seeded
    model with ``layers`` or ``weights``), ``tokenizer`` (a file, for a checkpoint of
    one's own), ``dtype`` (by default fp16 for a llama2.c model and int8 for the seeded
    one)."""
    if dtype is not None and dtype not in DTYPES:
        raise WorkloadError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    seeded = name == SEEDED or (name is None and (layers is not None or weights is not None))
    if seeded:
        if tokenizer:
            raise WorkloadError("the seeded model's tokens are bytes: it takes no --tokenizer")
        return _seeded(dtype or "int8", weights, layers, seed)
    if weights is not None or layers is not None:
        raise WorkloadError(f"--weights and --layers are the seeded model's; --model "
                            f"{name} brings its own")
    name = name or "stories260K"
    if name in MODELS:
        checkpoint, shipped = (MODELS_DIR / file for file in MODELS[name])
        tokenizer = tokenizer or shipped
    elif Path(name).is_file():
        checkpoint = Path(name)
        if not tokenizer:
            raise WorkloadError(f"--model {name} needs --tokenizer FILE, its tokenizer.bin")
    else:
        raise WorkloadError(f"unknown model {name!r}: give {', '.join(MODELS)}, {SEEDED}, or "
                            f"a llama2.c checkpoint file")
    dtype = dtype or "fp16"
    try:
        config, float_weights = toy.load_llama2c(checkpoint)
        words = Tokenizer.load(tokenizer, config.vocab_size)
    except (toy.ModelError, TokenizerError) as error:
        raise WorkloadError(str(error)) from None
    return Workload(Path(name).stem if name not in MODELS else name, "llama2c", dtype, config,
                    float_weights, words)


def _seeded(dtype, weights, layers, seed):
    if weights is not None and layers is not None:
        raise WorkloadError("--layers sets the depth of the seeded model; --weights brings "
                            "its own")
    try:
        if weights is None:
            config = toy.ModelConfig(**({} if layers is None else {"n_layers": layers}))
            return Workload(SEEDED, "bytes", dtype, config, toy.random_weights(config, seed))
        try:
            with open(weights, "rb") as f:
                magic = f.read(len(toy.MAGIC))
        except OSError as error:
            raise WorkloadError(f"cannot read weight file {weights}: {error.strerror}") \
                from None
        config, float_weights = (toy.load_weights(weights) if magic == toy.MAGIC
                                 else toy.load_llama2c(weights))
    except toy.ModelError as error:
        raise WorkloadError(str(error)) from None
    return Workload(Path(weights).stem, "bytes", dtype, config, float_weights)
