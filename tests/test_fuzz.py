"""Fuzzing with hypothesis: whatever a user feeds them, the assembler, the model file
readers, the defect-map and route parsers and the ``tessera`` command line give a
result or their own one-line error, never another exception, a hang or a huge
allocation.

``TESSERA_FUZZ`` picks the profile: ``ci`` (the default, in ``make test``) runs a few
dozen derandomized examples a target; ``full`` (``make fuzz``) runs 10,000 a target
from a random seed (hypothesis prints the failing example and a ``@reproduce_failure``
blob).  A failing example found once is kept below as an ``@example``.
"""

import argparse
import contextlib
import io
import os
import shutil
import signal
import tempfile
import tracemalloc
import unicodedata
from dataclasses import fields
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from host import asm, cli
from host import model as toy
from host.asm import AsmError, assemble, disassemble
from host.routes import parse_route
from host.tokenizer import Tokenizer, TokenizerError
from host.wafer import WaferShape, defect_map
from host.workload import MODELS, MODELS_DIR
from rtl.die import parse_defects
from rtl.isa import Counter, Op
from rtl.params import PRESETS, ParamError, Params, preset
from rtl.wavelet import Dir
from tb.random_words import random_word

PROFILES = {
    "ci": settings(max_examples=40, derandomize=True),
    "full": settings(max_examples=10_000),
}
PROFILE = settings(PROFILES[os.environ.get("TESSERA_FUZZ", "ci")], deadline=None,
                   database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Seconds after which an example counts as a hang.
HANG_SECONDS = 60

DEFAULT = preset("default")
LARGEST = Params(colors=32, sram_bytes=1 << 17, code_bytes=1 << 16)
CHECKPOINT, TOKENIZER = (MODELS_DIR / name for name in MODELS["stories260K"])


class Hang(Exception):
    pass


@contextlib.contextmanager
def bounded(seconds=HANG_SECONDS):
    """Fail the example as a hang if it runs longer than ``seconds``."""
    def expire(signum, frame):
        raise Hang(f"no result after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def allocation_bound(limit):
    """Fail if the Python and numpy allocations inside peak above ``limit`` bytes."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"allocated {peak:,} bytes, more than {limit:,}"


def one_line(error):
    text = str(error)
    assert text and "\n" not in text, f"{type(error).__name__} is not one line: {text!r}"


# --- the assembler ---------------------------------------------------------------------

@st.composite
def valid_programs(draw):
    """Words :func:`tb.random_words.random_word` draws from rtl.isa, for the default core."""
    ops = draw(st.lists(st.sampled_from(list(Op)), min_size=1, max_size=48))
    rng = draw(st.randoms(use_true_random=False))
    return [random_word(rng, op, pc, DEFAULT) for pc, op in enumerate(ops)]


@st.composite
def restyled(draw, text):
    """``text`` as a person might write it: any case, other spacing, comments."""
    lines = []
    for line in text.splitlines():
        if draw(st.booleans()):
            line = line.upper()
        line = line.replace(", ", draw(st.sampled_from([",", ", ", " ,\t", " , "])))
        lines.append(draw(st.sampled_from(["", "  ", "\t"])) + line
                     + draw(st.sampled_from(["", " ; a comment", "\t# more, r1: x"])))
    return "\n".join(lines)


@PROFILE
@given(st.data(), valid_programs())
def test_valid_programs_round_trip(data, words):
    """Valid words disassemble to instructions (never .inst); that text, restyled,
    assembles to the same words; its disassembly is the same text."""
    text = disassemble(words)
    assert ".inst" not in text
    assert assemble(data.draw(restyled(text), label="restyled"), DEFAULT).code == words
    assert disassemble(assemble(text, DEFAULT).code) == text


@PROFILE
@given(st.lists(st.integers(0, 2**32 - 1), max_size=48))
def test_any_words_round_trip(words):
    text = disassemble(words)
    assert assemble(text, LARGEST).code == words


#: Pieces of assembly: every mnemonic and counter of rtl.isa, the directives, registers
#: and descriptors in and out of range, numbers, labels and punctuation.
ASM_TOKENS = st.one_of(
    st.sampled_from([op.name.lower() for op in Op] + ["li"] + list(asm._DIRECTIVES)
                    + [counter.name.lower() for counter in Counter]
                    + ["fp16", "bf16", "fp32", "float", "wide", "async", "ctrl", "shift=",
                       "slot=", "L1", "L1:", "x:", "@", "(", ")", ",", ":", "+", "-", ";", "#"]),
    st.from_regex(r"[rd][0-9]{1,2}", fullmatch=True),
    st.integers(-2**40, 2**40).map(str),
    st.integers(0, 2**40).map(hex),
    st.text(max_size=6))


@st.composite
def garbage_sources(draw):
    lines = draw(st.lists(st.lists(ASM_TOKENS, max_size=7), max_size=12))
    return "\n".join(" ".join(line) for line in lines)


@PROFILE
@given(st.one_of(garbage_sources(), st.text(max_size=300)))
@example(".data 0\n.zero 0x7fffffffffff")
@example(".data 0x10\nx: .zero 0x100000000\n.code\nli r1, x")
def test_garbage_assembly_gets_an_error_with_its_line(text):
    """Any text assembles or raises AsmError naming a line of the text (or none, for a
    problem of the whole program), without allocating more than the data SRAM."""
    with bounded(), allocation_bound(1 << 20):
        try:
            assemble(text, DEFAULT)
        except AsmError as error:
            one_line(error)
            assert error.line is None or 1 <= error.line <= len(text.splitlines()), error


# --- the model file readers ------------------------------------------------------------

def mutations(blob, header):
    """``blob`` truncated, with bytes flipped (half of them in the first ``header``
    bytes), or with a byte string spliced in."""
    length = len(blob)
    flips = st.lists(st.tuples(st.one_of(st.integers(0, header - 1), st.integers(0, length - 1)),
                               st.integers(1, 255)), min_size=1, max_size=8)

    def flip(changes):
        mutated = bytearray(blob)
        for position, mask in changes:
            mutated[position] ^= mask
        return bytes(mutated)
    return st.one_of(
        st.integers(0, length - 1).map(lambda end: blob[:end]),
        flips.map(flip),
        st.tuples(st.integers(0, length), st.binary(max_size=16))
        .map(lambda cut: blob[:cut[0]] + cut[1] + blob[cut[0]:]))


def load_within_bounds(read, path, blob, errors):
    """``read(path)`` of ``blob`` gives a result or one of ``errors`` in one line, in
    bounded time and memory (a few times the file's size)."""
    path.write_bytes(blob)
    with bounded(), allocation_bound(4 * len(blob) + (1 << 20)):
        try:
            result = read(path)
        except errors as error:
            one_line(error)
            event("refused")
            return None
    event("loaded")
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


SMALL = toy.ModelConfig(dim=8, hidden_dim=16, n_layers=1, n_heads=2, n_kv_heads=1,
                        vocab_size=16, seq_len=8)


def weight_file():
    """The bytes of a tessera weight file of a small seeded model."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.bin"
        toy.save_weights(path, SMALL, toy.random_weights(SMALL))
        return path.read_bytes()


WEIGHTS = weight_file()


def llama2c_header(values):
    return toy._LLAMA2C.pack(*values)


@PROFILE
@given(blob=mutations(WEIGHTS, toy._HEADER.size))
def test_weight_file_reader(scratch, blob):
    load_within_bounds(toy.load_weights, scratch / "weights.bin", blob, toy.ModelError)


@PROFILE
@given(blob=mutations(CHECKPOINT.read_bytes(), toy._LLAMA2C.size))
@example(blob=llama2c_header([2**31 - 2] * 7))          # claims exabytes: refused unread
@example(blob=CHECKPOINT.read_bytes()[:20] + (-512).to_bytes(4, "little", signed=True)
         + CHECKPOINT.read_bytes()[24:])           # its own classifier, which is missing
def test_llama2c_reader(scratch, blob):
    load_within_bounds(toy.load_llama2c, scratch / "checkpoint.bin", blob, toy.ModelError)


@PROFILE
@given(st.lists(st.integers(-2**31, 2**31 - 1), min_size=7, max_size=7),
       st.integers(0, 4096))
def test_llama2c_reader_on_any_header(scratch, header, payload):
    """Any configuration, before as many float32 as it may take: a load that matches, or
    the one-line error, without allocating what the header claims."""
    load_within_bounds(toy.load_llama2c, scratch / "header.bin",
                       llama2c_header(header) + bytes(4 * payload), toy.ModelError)


@PROFILE
@given(mutations(TOKENIZER.read_bytes(), 64), st.text(max_size=12))
def test_tokenizer_reader(scratch, blob, text):
    """A tokenizer that loads also encodes and decodes any text (or says why not)."""
    words = load_within_bounds(lambda path: Tokenizer.load(path, 512), scratch / "tok.bin",
                               blob, TokenizerError)
    if words is not None:
        with bounded():
            try:
                words.decode(words.encode(text))
            except TokenizerError as error:
                one_line(error)


# --- the defect-map and route parsers --------------------------------------------------

def noisy(parts):
    """Text of ``parts`` (strategies of strings), with random text sometimes between."""
    return st.lists(st.one_of(*parts, st.text(max_size=3)), max_size=8).map("".join)


DEFECT_LINES = noisy([st.integers(-2, 40).map(str), st.just(","), st.just(" "),
                      st.just("#"), st.sampled_from(["0", "7", "00", "1e3", "٣", "0x2"])])


@PROFILE
@given(st.lists(DEFECT_LINES, max_size=10).map("\n".join),
       st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 6), st.integers(1, 6)))
def test_defect_maps(text, dies, die):
    shape = WaferShape(dies, die, DEFAULT)
    with bounded():
        try:
            dead = defect_map(shape, text)
        except ParamError as error:
            one_line(error)
        else:
            assert dead == parse_defects(text, shape.params, check=False)


@pytest.mark.parametrize("text", ["²,1", "9" * 5000 + ",0"])
def test_defect_map_numbers_that_int_cannot_read_are_refused(text):
    with pytest.raises(ParamError):
        parse_defects(text, DEFAULT)


PORTS = st.sampled_from([port.name for port in Dir] + ["n", "ramp", "X"])
ROUTE_TEXT = st.one_of(
    st.builds("{}@{}: {} -> {}{}".format, st.integers(0, 40), st.integers(0, 9), PORTS,
              st.lists(PORTS, min_size=1, max_size=5).map(",".join),
              st.sampled_from(["", " last", "last"])),
    noisy([st.integers(-1, 40).map(str), st.sampled_from(["@", ":", "->", ",", " ", "last"]),
           PORTS]))


@PROFILE
@given(st.one_of(ROUTE_TEXT, st.text(max_size=40)), st.sampled_from(sorted(PRESETS)))
@example("9" * 5000 + ": W -> E", "default")
def test_routes(text, name):
    with bounded():
        try:
            route = parse_route(text)
            route.word(PRESETS[name])
        except ParamError as error:
            one_line(error)
        else:
            assert parse_route(repr(route)).word(PRESETS[name]) == route.word(PRESETS[name])


# --- the command line --------------------------------------------------------------------

class Simulation(Exception):
    """Raised where the command would start a build or a simulation: it got that far."""


#: Where the commands start a build, a simulation or a long computation.
HEAVY = ["sim.build.verilog", "host.runtime.generate", "host.mapper.plan",
         "host.bench.fabric.run", "host.bench.gemv.run_bench", "host.bench.speed.run",
         "host.bench.kernel.run", "host.bench.pipeline.run", "host.bench.wafers.run",
         "host.bench.validation.run", "host.bench.serve.run"]

#: The options that write files: only ever these names, inside the scratch folder.
OUTPUTS = {"output", "json", "plot", "heatmap", "trace", "waves"}
OUTPUT_NAMES = ["out.json", "out.png", "out.txt", "out.fst", "sub/out.json", "missing/dir/",
                "in.s"]


def commands(parser, path=()):
    """``(words, options)`` of every command: options as ``(flags, action)``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))
            return
    yield path, [action for action in parser._actions
                 if not isinstance(action, argparse._HelpAction)]


COMMANDS = list(commands(cli._parser()))

# Argument text as a shell passes it, without control characters: no NUL, no lone
# surrogate, no line break (the messages quote arguments as they are, argparse's too).
NOT_IN_ARGUMENTS = ("Cs", "Zl", "Zp", "Cc")
ARG_TEXT = st.text(st.characters(blacklist_categories=NOT_IN_ARGUMENTS), max_size=12)


def argument(text):
    return all(unicodedata.category(character) not in NOT_IN_ARGUMENTS for character in text)


FILES = ["stories.bin", "broken.bin", "tok.bin", "broken_tok.bin", "weights.bin", "prog.s",
         "defects.txt", "prompts.txt", "costs.json", "model.json", "empty", "dir", "missing"]
VALUES = st.one_of(
    st.sampled_from(FILES),
    st.integers(-3, 600).map(str), st.integers().map(str),
    st.floats().map(repr),
    st.tuples(st.integers(0, 300), st.integers(0, 300)).map(lambda wh: f"{wh[0]}x{wh[1]}"),
    st.lists(st.integers(-1, 70).map(str), min_size=1, max_size=4).map(",".join),
    st.sampled_from(sorted(PRESETS) + ["seeded", "stories260K", "llama3.1-8b", "wse3",
                                       "native", "amaranth", "²x2", "0x10"]),
    st.tuples(st.sampled_from([f.name for f in fields(Params)] + ["nope"]), ARG_TEXT)
    .map(lambda kv: "=".join(kv)),
    ARG_TEXT)


SHAPES = st.tuples(st.integers(0, 9), st.integers(0, 9)).map(lambda wh: f"{wh[0]}x{wh[1]}")
COUNTS = st.lists(st.integers(0, 70).map(str), min_size=1, max_size=4).map(",".join)
#: Likely values of each option (by its dest), three times in four instead of any value.
LIKELY = {
    "preset": st.sampled_from(sorted(PRESETS)),
    "set": st.tuples(st.sampled_from([f.name for f in fields(Params)]),
                     st.integers(0, 64)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    "wafer": SHAPES, "die": SHAPES, "mesh": SHAPES, "users": COUNTS, "layers": COUNTS,
    "prefill_lengths": COUNTS,
    "model": st.sampled_from(["seeded", "stories260K", "stories.bin", "broken.bin",
                              "weights.bin", "llama3.1-8b", "model.json", "missing"]),
    "tokenizer": st.sampled_from(["tok.bin", "broken_tok.bin", "empty"]),
    "weights": st.sampled_from(["weights.bin", "stories.bin", "broken.bin", "empty", "dir"]),
    "defects": st.sampled_from(["defects.txt", "empty", "dir", "missing", "stories.bin"]),
    "prompts": st.sampled_from(["prompts.txt", "empty", "dir", "missing", "tok.bin"]),
    "file": st.sampled_from(["prog.s", "defects.txt", "stories.bin", "missing", "dir"]),
    "routes": ROUTE_TEXT.filter(argument),
    "waves_tiles": st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)).map(
        lambda xy: f"{xy[0]},{xy[1]}"), min_size=1, max_size=3).map(";".join),
    "waves_cycles": st.tuples(st.integers(-1, 99), st.integers(-1, 99)).map(
        lambda ab: f"{ab[0]}:{ab[1]}"),
}
TYPED = {int: st.integers(-2, 70).map(str), float: st.floats(-1, 10).map(repr)}


@st.composite
def command_lines(draw):
    """``(command, argv)``: a command and options of its own (now and then another word),
    with values likely for the option three times in four, anything the fourth."""
    words, actions = draw(st.sampled_from(COMMANDS))
    argv = list(words)
    for _ in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from(actions))
        if action.option_strings:
            argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs == 0:
            continue
        likely = (st.sampled_from(list(action.choices)) if action.choices
                  else LIKELY.get(action.dest, TYPED.get(action.type, VALUES)))
        argv.append(draw(st.sampled_from(OUTPUT_NAMES) if action.dest in OUTPUTS
                         else st.one_of(likely, likely, likely, VALUES)))
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.one_of(VALUES, st.just("-h"))))
    return " ".join(words), argv


@pytest.fixture(scope="module")
def command_folder(tmp_path_factory):
    """A folder of the files the command lines name (good, broken, empty, missing), as the
    working folder, with the builds and simulations stubbed out."""
    folder = tmp_path_factory.mktemp("cli")
    checkpoint = CHECKPOINT.read_bytes()
    files = {"stories.bin": checkpoint, "broken.bin": checkpoint[:1000],
             "tok.bin": TOKENIZER.read_bytes(), "broken_tok.bin": TOKENIZER.read_bytes()[:99],
             "prog.s": b"loop: addi r1, r1, 1\n bne r1, r0, loop\n halt\n",
             "defects.txt": b"0,0\n5,1 # spare\n", "prompts.txt": b"Once\nupon\n",
             "costs.json": b'{"not": "costs"}', "empty": b"", "weights.bin": WEIGHTS,
             "model.json": b'{"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, '
                           b'"hidden_dim": 128, "vocab_size": 512}'}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    (folder / "dir").mkdir()
    stubs = [mock.patch(target, side_effect=Simulation(target)) for target in HEAVY]
    with contextlib.chdir(folder), contextlib.ExitStack() as stack:
        for stub in stubs:
            stack.enter_context(stub)
        yield folder


@PROFILE
@given(command_lines())
@example(("wafer", ["wafer", "--wafer", "²x2"]))
@example(("wafer", ["wafer", "--defects", "stories.bin"]))
@example(("run", ["run", "--prompts", "tok.bin"]))
@example(("bench pipeline", ["bench", "pipeline", "--seed", "-1"]))
@example(("run", ["run", "--model", "seeded", "--seed", "-1"]))
@example(("bench fabric", ["bench", "fabric", "--mesh", "9" * 5000 + "x1"]))
def test_command_line(command_folder, command_line):
    """Exit 0 (or reach a simulation), or exit 2 with one line on stderr."""
    command, argv = command_line
    stdout, stderr = io.StringIO(), io.StringIO()
    outcome = "exit {}"
    with bounded(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = cli.main(argv)
        except Simulation:
            status, outcome = 0, "reached a simulation"
        except SystemExit as exit_:            # --help
            status = exit_.code
    event(f"tessera {command}: {outcome.format(status)}")
    assert status in (0, 2), f"exit {status}: {stderr.getvalue()}"
    if status == 2:
        lines = stderr.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tessera: "), stderr.getvalue()
    shutil.rmtree(command_folder / "sub", ignore_errors=True)
