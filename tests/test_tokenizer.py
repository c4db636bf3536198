"""host.tokenizer: llama2.c's tokenizer.bin reader, encoder and decoder.

The hand-written cases use a tiny vocabulary whose encodings are worked out
from run.c's rules (see each case's comment); the real-vocabulary cases use
host/models/tok512.bin and, for decoding, the stories260K model's own greedy
tokens and the sample its README documents.
"""

import os
import random
import struct
from pathlib import Path

import pytest

from host.model import FloatModel, load_llama2c
from host.tokenizer import BOS, EOS, Tokenizer, TokenizerError

MODELS = Path(__file__).resolve().parents[1] / "host" / "models"
TOK512 = MODELS / "tok512.bin"
STORIES = MODELS / "stories260K.bin"

# The start of stories260K's greedy sample from BOS (host/models/README.md; its
# only real line break is after "too high.").
SAMPLE = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
          "in the park. One day, she saw a big, red ball. She wanted to play with it, but "
          "it was too high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad "
          "and didn't know what to do. She said, \"I want to play with your ball, but")

SPECIALS = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)]
BYTES = [(b"<0x%02X>" % b, 0.0) for b in range(256)]      # ids 3..258
# The tiny vocabulary's own pieces, from id 259: (piece, score).
PIECES = [(b" ", 0.0),            # 259
          (b"a", 0.0),            # 260
          (b"b", 0.0),            # 261
          (b"c", 0.0),            # 262
          (b"d", 0.0),            # 263
          (b"ab", 1.0),           # 264
          (b"bc", 2.0),           # 265
          (b" a", 0.5),           # 266
          (b"cd", 2.0),           # 267: ties with "bc"
          ("ü".encode(), 0.0),    # 268: a two-byte character that is a piece
          (b"dd", -1e10),         # 269: no better than run.c's starting best score
          (b"cc", -9e9),          # 270: just better
          (b"<0x41>x", 0.0)]      # 271: looks like a byte piece but is not one
SPACE, A, B, C, D, AB, BC, SPACE_A, CD, U_UMLAUT, DD, CC, NOT_BYTE = range(259, 272)


def write_tokenizer(path, tokens, max_length=None):
    """A tokenizer.bin of ``tokens`` ((piece, score) pairs) at ``path``."""
    if max_length is None:
        max_length = max(len(piece) for piece, _ in tokens)
    blob = struct.pack("<i", max_length) + b"".join(
        struct.pack("<fi", score, len(piece)) + piece for piece, score in tokens)
    path.write_bytes(blob)
    return path


@pytest.fixture
def tiny(tmp_path):
    vocab = SPECIALS + BYTES + PIECES
    return Tokenizer.load(write_tokenizer(tmp_path / "tiny.bin", vocab), len(vocab))


@pytest.fixture(scope="module")
def tok512():
    return Tokenizer.load(TOK512, 512)


def byte_token(b):
    return b + 3


# --- hand-written encodings ---

@pytest.mark.parametrize("text, expected", [
    # [BOS, ' ', a, b, c]: "bc" (2.0) beats "ab" (1.0) and " a" (0.5); then only " a"
    # remains (no "abc"); merging by position would have given " ab", "c" instead.
    ("abc", [BOS, SPACE_A, BC]),
    # [BOS, ' ', b, c, d]: "bc" and "cd" tie at 2.0, the first pair wins; then
    # " bc" and "bcd" are not pieces.
    ("bcd", [BOS, SPACE, BC, D]),
    # 'é' (C3 A9) is not a piece: its bytes fall back to 0xC3 + 3, 0xA9 + 3, and the
    # byte pieces' concatenation "<0xC3><0xA9>" is no piece; ' ' and 'a' merge.
    ("aé", [BOS, SPACE_A, byte_token(0xC3), byte_token(0xA9)]),
    # A four-byte character falls back to four byte tokens.
    ("😀", [BOS, SPACE] + [byte_token(b) for b in (0xF0, 0x9F, 0x98, 0x80)]),
    # 'ü' (two bytes) is a piece itself.
    ("ü", [BOS, SPACE, U_UMLAUT]),
    # "dd" scores -1e10, which run.c's strict '>' against its starting -1e10 never
    # picks; "cc" at -9e9 merges.
    ("dd", [BOS, SPACE, D, D]),
    ("cc", [BOS, SPACE, CC]),
    # No vocabulary piece: a character outside it falls back even when ASCII.
    ("z", [BOS, SPACE, byte_token(ord("z"))]),
])
def test_hand_written_encodings(tiny, text, expected):
    assert tiny.encode(text) == expected


def test_bos_and_eos_flags(tiny):
    # [' ', a, b]: "ab" (1.0) beats " a" (0.5); " ab" is no piece.  EOS after merging.
    assert tiny.encode("ab", bos=False, eos=True) == [SPACE, AB, EOS]
    assert tiny.encode("ab", bos=False) == [SPACE, AB]


def test_empty_text_is_bos_alone(tiny, tok512):
    assert tiny.encode("") == [BOS]
    assert tok512.encode("") == [BOS]
    assert tok512.encode("", bos=False) == []
    assert tok512.encode("", eos=True) == [BOS, EOS]
    assert tok512.decode([BOS]) == ""



def test_duplicate_piece_looks_up_lower_id(tmp_path):
    # run.c's bsearch may find either copy; this reader takes the lower id.
    vocab = SPECIALS + BYTES + [(b" ", 0.0), (b"a", 0.0), (b"a", 0.0)]
    tokenizer = Tokenizer.load(write_tokenizer(tmp_path / "t.bin", vocab), len(vocab))
    assert tokenizer.encode("a") == [BOS, 259, 260]

# --- hand-written decodings ---

def test_decode_piece(tiny):
    assert tiny.decode_piece(BOS, SPACE_A) == b"a"          # the dummy space goes after BOS
    assert tiny.decode_piece(A, SPACE_A) == b" a"           # and only there
    assert tiny.decode_piece(BOS, byte_token(0x41)) == b"A"
    assert tiny.decode_piece(A, byte_token(0x00)) == b"\x00"
    assert tiny.decode_piece(A, byte_token(0xC3)) == b"\xc3"
    assert tiny.decode_piece(A, NOT_BYTE) == b"<0x41>x"
    assert tiny.decode_piece(A, EOS) == b"\n</s>\n"


def test_decode(tiny):
    assert tiny.decode([BOS, SPACE_A, BC]) == "abc"
    assert tiny.decode([SPACE_A, BC]) == " abc"             # no BOS: the space stays
    assert tiny.decode([BOS, SPACE, byte_token(0xC3), byte_token(0xA9)]) == "é"
    assert tiny.decode([BOS, SPACE, byte_token(0xC3)]) == "\ufffd"   # a cut character


# --- round trips with the real vocabulary ---

ASCII = ["Once upon a time", "a", " leading space", "trailing space ", "two  spaces",
         "Lily's mom said, \"Lily, let's go!\"\n\tTabs and\nlines.", "12345 + 678 = ?",
         "<0x41> is not a byte token here", "~`|\\[]{}"]
NON_ASCII = ["héllo wörld", "日本", "😀", "naïve café — “quoted” …", "mixed 日本 and 😀 text"]


@pytest.mark.parametrize("text", ASCII + NON_ASCII)
def test_round_trip(tok512, text):
    tokens = tok512.encode(text)
    assert tokens[0] == BOS
    assert all(0 <= t < 512 for t in tokens)
    assert tok512.decode(tokens) == text


@pytest.mark.parametrize("text", ["héllo wörld", "日本", "😀"])
def test_non_ascii_uses_byte_fallback(tok512, text):
    # 'ö', the CJK characters and the emoji are not tok512 pieces.
    assert any(3 <= t <= 258 for t in tok512.encode(text))


def test_random_round_trips(tok512):
    seed = int(os.environ.get("TESSERA_SEED", "1"))
    rng = random.Random(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ABCXYZ .,!?'\"\n\t<>0123456789") + \
        ["é", "ö", "ñ", "日", "本", "😀", "—", "\x00", "\x7f"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        tokens = tok512.encode(text)
        assert tok512.decode(tokens) == text, f"seed {seed} (TESSERA_SEED): {text!r} -> {tokens}"


def test_once_upon_a_time(tok512):
    tokens = tok512.encode("Once upon a time")
    # " Once", " upon", " a", " time" are all pieces of tok512 (ids 403, 407, 261, 378).
    assert tokens == [BOS, 403, 407, 261, 378]
    assert tok512.decode(tokens) == "Once upon a time"


def test_model_sample_decodes_as_documented(tok512):
    config, weights = load_llama2c(STORIES)
    generated, _ = FloatModel(config, weights).generate([BOS], 130)
    assert BOS not in generated                     # llama2.c would stop at a BOS
    assert tok512.decode([BOS] + generated).startswith(SAMPLE)
    # The model's own first tokens are the encoder's tokenisation of its first words.
    assert generated[:4] == tok512.encode("Once upon a time")[1:]


# --- bad input ---

def error_of(call, *args, **kwargs):
    with pytest.raises(TokenizerError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "absent.bin"
    message = error_of(Tokenizer.load, path, 512)
    assert "cannot read" in message and str(path) in message


@pytest.mark.parametrize("cut, problem", [
    (2, "too short"),                       # inside max_token_length
    (4 + 4, "inside token 0's header"),     # inside the first score/length
    (4 + 8 + 2, "inside token 0's piece"),  # inside "<unk>"
    (-1, "inside token 511's piece"),       # the last byte of the last piece
])
def test_truncated_file(tmp_path, cut, problem):
    path = tmp_path / "cut.bin"
    path.write_bytes(TOK512.read_bytes()[:cut])
    assert problem in error_of(Tokenizer.load, path, 512)


def test_fewer_tokens_than_vocab_size(tmp_path):
    path = write_tokenizer(tmp_path / "small.bin", SPECIALS + BYTES + PIECES)
    message = error_of(Tokenizer.load, path, 300)
    assert "holds 272 tokens" in message and "300" in message


def test_more_than_vocab_size(tmp_path):
    # Trailing bytes are an error: run.c would silently use a prefix of a larger
    # vocabulary than the model's.
    assert "beyond its 500 tokens" in error_of(Tokenizer.load, TOK512, 500)
    path = tmp_path / "extra.bin"
    path.write_bytes(TOK512.read_bytes() + b"\0")
    assert "1 bytes beyond" in error_of(Tokenizer.load, path, 512)


@pytest.mark.parametrize("length, max_length", [(-1, 8), (9, 8), (2**31 - 1, 8)])
def test_bad_piece_length(tmp_path, length, max_length):
    path = tmp_path / "bad.bin"
    path.write_bytes(struct.pack("<ifi", max_length, 0.0, length) + b"x" * 16)
    message = error_of(Tokenizer.load, path, 3)
    assert f"length {length}" in message and f"0..{max_length}" in message


@pytest.mark.parametrize("max_length", [0, -5])
def test_bad_max_token_length(tmp_path, max_length):
    path = write_tokenizer(tmp_path / "bad.bin", SPECIALS, max_length)
    assert f"max_token_length {max_length}" in error_of(Tokenizer.load, path, 3)


def test_vocab_size_without_bos_and_eos(tmp_path):
    path = write_tokenizer(tmp_path / "tiny.bin", SPECIALS)
    assert "vocab_size 2" in error_of(Tokenizer.load, path, 2)


def test_vocabulary_without_space_piece(tmp_path):
    vocab = SPECIALS + BYTES + [(b"a", 0.0)]
    tokenizer = Tokenizer.load(write_tokenizer(tmp_path / "t.bin", vocab), len(vocab))
    assert tokenizer.encode("") == [BOS]                    # no dummy prefix needed
    assert "dummy prefix" in error_of(tokenizer.encode, "a")


def test_vocabulary_without_byte_pieces(tmp_path):
    vocab = SPECIALS + [(b" ", 0.0), (b"a", 0.0)]
    tokenizer = Tokenizer.load(write_tokenizer(tmp_path / "t.bin", vocab), len(vocab))
    assert tokenizer.encode("a") == [BOS, 3, 4]
    assert "byte 0x7A" in error_of(tokenizer.encode, "z")


def test_text_that_is_not_unicode(tok512):
    assert "character 1" in error_of(tok512.encode, "a\ud800b")


@pytest.mark.parametrize("token", [512, -1])
def test_token_outside_vocabulary(tok512, token):
    assert f"token {token} is outside the vocabulary of 512" in \
        error_of(tok512.decode, [BOS, token])
