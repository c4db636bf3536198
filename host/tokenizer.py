"""llama2.c's byte-pair tokenizer, read from its ``tokenizer.bin`` format.

The format (little-endian): ``int32 max_token_length``, then for each of the
model's ``vocab_size`` tokens ``float32 score, int32 length`` and ``length``
bytes of the piece.  Token 0 is ``<unk>``, 1 BOS, 2 EOS, 3..258 the byte
pieces ``<0x00>``..``<0xFF>``; a leading space is stored as a space.  The file
must end after the last token: bytes beyond it would mean a vocabulary larger
than the model's, which run.c would silently cut (here it is an error).

Encoding follows run.c's ``encode``:

1. BOS if asked; then, for non-empty text, the piece ``" "`` (the dummy prefix).
2. Each UTF-8 character (1-4 bytes) is looked up as a piece; one that is not a
   piece becomes its bytes' fallback tokens, byte ``b`` as ``b + 3``.
3. Repeatedly, over adjacent pairs (BOS included), the pair whose concatenated
   pieces is a piece of the highest score is merged; the first such pair wins a
   tie (run.c's strict ``>``), and a piece scoring no more than run.c's starting
   best, float32(-1e10), never merges.  This stops when no pair merges.
4. EOS if asked.

Decoding follows run.c's ``decode``: a piece after BOS loses its leading space,
and a piece ``<0xHH>`` is the byte HH (exactly that form: run.c's ``sscanf``
also takes prefixes such as ``<0x4``, which no real vocabulary has).  The whole Python string is encoded
(run.c's C strings would end at a NUL character); where two tokens share a
piece, the lower id is the one looked up.
"""

import re
import struct
from pathlib import Path

import numpy as np

__all__ = ["BOS", "EOS", "Tokenizer", "TokenizerError"]

BOS = 1
EOS = 2
BYTE_OFFSET = 3     # byte b's fallback token is b + BYTE_OFFSET

_HEADER = struct.Struct("<i")
_TOKEN = struct.Struct("<fi")
_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")
# run.c starts its search for the best merge from this score, compared with '>'.
_NO_MERGE = float(np.float32(-1e10))


class TokenizerError(ValueError):
    """A tokenizer file, vocabulary size, text or token that the tokenizer cannot take."""


class Tokenizer:
    def __init__(self, pieces, scores):
        self.pieces, self.scores = tuple(pieces), tuple(scores)
        self.ids = {}
        for token, piece in enumerate(self.pieces):
            self.ids.setdefault(piece, token)

    @property
    def vocab_size(self):
        return len(self.pieces)

    @classmethod
    def load(cls, path, vocab_size):
        """The tokenizer in llama2.c's ``tokenizer.bin`` at ``path``, which must
        hold exactly ``vocab_size`` tokens (the model's vocabulary)."""
        if vocab_size < EOS + 1:
            raise TokenizerError(f"vocab_size {vocab_size} leaves no room for BOS ({BOS}) "
                                 f"and EOS ({EOS})")
        try:
            blob = Path(path).read_bytes()
        except OSError as error:
            raise TokenizerError(f"cannot read tokenizer file {path}: {error.strerror}") from None
        if len(blob) < _HEADER.size:
            raise TokenizerError(f"{path} is too short for a llama2.c tokenizer")
        max_length, = _HEADER.unpack_from(blob)
        if max_length <= 0:
            raise TokenizerError(f"{path}: max_token_length {max_length} is not positive")
        pieces, scores, offset = [], [], _HEADER.size
        for token in range(vocab_size):
            if offset == len(blob):
                raise TokenizerError(f"{path} holds {token} tokens, fewer than the "
                                     f"vocabulary size {vocab_size}")
            if offset + _TOKEN.size > len(blob):
                raise TokenizerError(f"{path}: the file ends inside token {token}'s header")
            score, length = _TOKEN.unpack_from(blob, offset)
            offset += _TOKEN.size
            if not 0 <= length <= max_length:
                raise TokenizerError(f"{path}: token {token} has length {length}, outside "
                                     f"0..{max_length} (max_token_length)")
            if offset + length > len(blob):
                raise TokenizerError(f"{path}: the file ends inside token {token}'s piece")
            pieces.append(blob[offset:offset + length])
            scores.append(score)
            offset += length
        if offset != len(blob):
            raise TokenizerError(f"{path}: {len(blob) - offset} bytes beyond its "
                                 f"{vocab_size} tokens (a larger vocabulary than the model's?)")
        return cls(pieces, scores)

    def encode(self, text, bos=True, eos=False):
        """The token ids of ``text``, as run.c's ``encode`` gives them."""
        characters = []
        for position, character in enumerate(text):
            try:
                characters.append(character.encode("utf-8"))
            except UnicodeEncodeError:      # only a lone surrogate has no UTF-8
                raise TokenizerError(f"text character {position} ({character!r}) is a lone "
                                     f"surrogate, which UTF-8 cannot encode") from None
        tokens = [BOS] if bos else []
        if characters:
            if b" " not in self.ids:
                raise TokenizerError("the vocabulary has no piece ' ' for the dummy prefix")
            tokens.append(self.ids[b" "])
        for character in characters:
            if character in self.ids:
                tokens.append(self.ids[character])
            else:
                tokens.extend(self._byte_token(b) for b in character)
        self._merge(tokens)
        if eos:
            tokens.append(EOS)
        return tokens

    def _byte_token(self, byte):
        token = byte + BYTE_OFFSET
        if token >= self.vocab_size:
            raise TokenizerError(f"no byte-fallback token for byte 0x{byte:02X} in a "
                                 f"vocabulary of {self.vocab_size}")
        return token

    def _merge(self, tokens):
        """Merge, in place, the best-scoring adjacent pair until none merges."""
        while True:
            best_score, best_index, best_token = _NO_MERGE, None, None
            for i in range(len(tokens) - 1):
                merged = self.ids.get(self.pieces[tokens[i]] + self.pieces[tokens[i + 1]])
                if merged is not None and self.scores[merged] > best_score:
                    best_score, best_index, best_token = self.scores[merged], i, merged
            if best_index is None:
                return
            tokens[best_index:best_index + 2] = [best_token]

    def decode_piece(self, prev_token, token):
        """The bytes of ``token`` following ``prev_token``, as run.c's ``decode``."""
        # A negative id would index from the end of the vocabulary.
        if not 0 <= token < self.vocab_size:
            raise TokenizerError(f"token {token} is outside the vocabulary of "
                                 f"{self.vocab_size}")
        piece = self.pieces[token]
        if prev_token == BOS and piece.startswith(b" "):
            piece = piece[1:]       # SentencePiece drops the dummy prefix after BOS
        byte = _BYTE_PIECE.fullmatch(piece)
        return bytes([int(byte.group(1), 16)]) if byte else piece

    def decode(self, tokens, after=None):
        """The text of ``tokens`` following the token ``after`` (a generation's text after
        its prompt); a leading BOS with nothing before it is not text (run.c never prints
        it)."""
        tokens = list(tokens)
        if after is None and tokens[:1] == [BOS]:
            after, tokens = BOS, tokens[1:]
        pieces = (self.decode_piece(prev, token) for prev, token in zip([after] + tokens, tokens))
        return b"".join(pieces).decode("utf-8", errors="replace")

