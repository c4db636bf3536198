"""The `tessera` command's contract for bad input: one line, exit status 2, nothing written."""

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from host.cli import _layout, main
from tb.checkpoints import write_llama2c


def tessera(*args):
    result = subprocess.run([sys.executable, "-m", "host.cli", *args],
                            capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def _model_file(arg):
    """A ``tessera project`` model configuration for the placeholders of the cases below,
    written beside the test's outputs' folder (so that it is not one of them)."""
    from host.projection import MODELS
    good = MODELS["llama3.1-8b"]
    texts = {"{bad json}": "{", "{30 heads}": json.dumps(dict(good, n_heads=30)),
             "{no vocab_size}": json.dumps({k: v for k, v in good.items() if k != "vocab_size"})}
    if arg not in texts:
        return arg
    path = Path(tempfile.mkdtemp()) / "model.json"
    path.write_text(texts[arg])
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["verilog", "router", "--set", "colors=0"], "colors must be 1..32, not 0"),
    (["verilog", "router", "--set", "colors=33"], "colors must be 1..32, not 33"),
    (["verilog", "mesh", "--set", "width=0"], "mesh must be 1..255 tiles on each side"),
    (["verilog", "router", "--set", "queue_depth=0"], "queue_depth must be 1..64, not 0"),
    (["verilog", "router", "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["verilog", "router", "--set", "colors"], "--set expects key=value"),
    (["verilog", "router", "--set", "colors=many"], "colors must be an integer"),
    (["verilog", "router", "--preset", "huge"], "unknown preset 'huge'"),
    (["verilog", "mesh", "--synth"], "--synth covers router, core and tile, not mesh"),
    (["verilog", "router", "--preset", "test", "--no-output"],
     "nothing to do: give -o DIR for the Verilog"),
    (["route", "9: W -> E"], "color 9 has no route table"),
    (["route", "2: Q -> E"], "no port named 'Q'"),
    (["route", "2: W -> E,UP"], "no port named 'UP'"),
    (["route", "2@5: W -> E"], "switch position 5 does not exist"),
    (["route", "two: W -> E"], "is not COLOR[@POSITION]"),
    (["bench", "fabric", "--mesh", "8by8"], "--mesh expects WxH"),
    (["bench", "fabric", "--rates", "0.1,fast"], "--rates expects numbers"),
    (["bench", "fabric", "--rates", "1.5"], "--rates must lie in (0, 1]"),
    (["bench", "fabric", "--traffic", "storm"], "invalid choice: 'storm'"),
    (["bench", "fabric", "--mesh", "4x2", "--traffic", "transpose"], "needs a square mesh"),
    (["bench", "fabric", "--mesh", "1x1"], "needs at least two routers"),
    (["bench", "pipeline", "--users", "1,two"], "--users expects whole numbers"),
    (["bench", "pipeline", "--users", "0,2"], "--users must be at least 1 each"),
    (["bench", "pipeline", "--users", "12"], "12 users need more KV cache"),
    (["bench", "pipeline", "--prefill-lengths", "8,65"], "65 tokens exceed the model's context"),
    (["bench", "pipeline", "--tokens", "1"], "--tokens must be at least 2"),
    (["bench", "serve", "--clients", "2,many"], "--clients expects whole numbers"),
    (["bench", "serve", "--clients", "0"], "--clients must be at least 1 each"),
    (["bench", "serve", "--clients", "12"], "12 users need more KV cache"),
    (["bench", "serve", "--tokens", "1"], "--tokens must be at least 2"),
    (["project", "--model", "llama9"], "unknown model 'llama9'"),
    (["project", "--model", "{bad json}"], "not a JSON model configuration"),
    (["project", "--model", "{30 heads}"], "must split into"),
    (["project", "--model", "{no vocab_size}"], "missing vocab_size"),
    (["project", "--model", "llama3.1-70b"], "do not fit the data SRAM of 1 wafer(s)"),
    (["project", "--model", "llama3.1-8b", "--users", "200"],
     "users' KV caches at 4096 positions"),
    (["project", "--model", "llama3.1-8b", "--wafer", "wse2"], "the projection knows wse3"),
    (["project"], "needs --model"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
    out = tmp_path / "out"
    extra = ["-o", str(out)] if args[0] == "verilog" else []
    if "--no-output" in args:                   # the case without -o: the flag marks it
        args, extra = [arg for arg in args if arg != "--no-output"], []
    extra += ["--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")] \
        if args[:2] in (["bench", "fabric"], ["bench", "pipeline"], ["bench", "serve"]) \
        or args[0] == "project" \
        else []
    args = [_model_file(arg) for arg in args]
    status, stdout, stderr = tessera(*args, *extra)
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("tessera: error: "), stderr
    assert message in stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []       # nothing half-written


def test_route_assembles_the_same_word_as_the_packer(capsys):
    from rtl.params import preset
    from rtl.wavelet import Dir, pack_route_write
    assert main(["route", "--preset", "test", "2@1: W -> E,RAMP last"]) == 0
    word = pack_route_write(preset("test"), 2, 1, Dir.W, [Dir.E, Dir.RAMP], True)
    assert capsys.readouterr().out.split()[0] == f"{word:#x}"


def test_verilog_without_an_output_directory_only_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["verilog", "router", "--preset", "test", "--json", "stats.json"]) == 0
    assert capsys.readouterr().out.startswith("router: tessera_router (")
    assert [path.name for path in tmp_path.iterdir()] == ["stats.json"]


def test_verilog_writes_the_modules_and_a_parameter_sidecar(tmp_path, capsys):
    assert main(["verilog", "mesh", "--preset", "test", "--set", "width=3", "-o", str(tmp_path / "v"),
                 "--json", str(tmp_path / "stats.json")]) == 0
    written = sorted(path.name for path in (tmp_path / "v").iterdir())
    assert written == ["params.json", "tessera_mesh.v", "tessera_router.v"]
    sidecar = json.loads((tmp_path / "v" / "params.json").read_text())
    assert sidecar["params"]["width"] == 3 and sidecar["params"]["colors"] == 4
    assert sidecar["top"] == "tessera_mesh"
    # The mesh places the router module once per tile; the router is converted once.
    mesh = (tmp_path / "v" / "tessera_mesh.v").read_text()
    assert mesh.count("tessera_router router_") == 3 * 4
    assert "module tessera_router" not in mesh


ASM_SOURCE = """\
; three instructions and four data bytes
        li   r1, table
loop:   bdec r1, loop
        halt
.data 0x10
table:  .word 0x01020304
"""


def test_asm_writes_the_code_words_in_hex(tmp_path, capsys):
    from host.asm import assemble
    from rtl.isa import Op, encode
    from rtl.params import preset
    source = tmp_path / "prog.s"
    source.write_text(ASM_SOURCE)
    out = tmp_path / "hex" / "prog.hex"
    assert main(["asm", str(source), "--preset", "test", "-o", str(out)]) == 0
    assert capsys.readouterr().out == "3 instructions, 4 data bytes\n"
    lines = out.read_text().splitlines()
    assert lines == [f"{word:08x}" for word in assemble(ASM_SOURCE, preset("test")).code]
    assert lines[0] == f"{encode(Op.ADDI, 1, 0, imm=0x10):08x}"
    assert lines[2] == f"{encode(Op.HALT):08x}"
    assert sorted(path.name for path in out.parent.iterdir()) == ["prog.hex"]   # no temporary left


@pytest.mark.parametrize("source, args, message", [
    (ASM_SOURCE.replace("halt", "fooo r1"), [], "line 4: unknown instruction 'fooo'"),
    ("nop\naddi r1, r0, 9000\n", [], "line 2: immediate 9000 out of range -8192..8191"),
    ("nop\n" * 17, ["--set", "code_bytes=64"],
     "program is 17 instructions (68 bytes); the code memory holds 16 (64 bytes)"),
])
def test_asm_malformed_source_is_one_line_exit_2_and_nothing_written(tmp_path, source, args,
                                                                      message):
    path = tmp_path / "bad.s"
    path.write_text(source)
    out = tmp_path / "bad.hex"
    status, stdout, stderr = tessera("asm", str(path), "--preset", "test", *args, "-o", str(out))
    assert status == 2, stderr
    assert stderr == f"tessera: {path}: {message}\n"
    assert stdout == ""
    assert list(tmp_path.iterdir()) == [path]


def test_asm_missing_file_is_exit_2(tmp_path):
    status, _, stderr = tessera("asm", str(tmp_path / "none.s"), "-o", str(tmp_path / "x.hex"))
    assert status == 2
    missing = tmp_path / "none.s"
    assert stderr == f"tessera: error: cannot read {missing}: No such file or directory\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("defects, message", [
    ("0,0\n1,0\n", "die (0, 0): row 0 has 2 dead tiles; the die has 1 spare tile(s) a row"),
    ("0;0\n", "defect map line 1: expected 'column,row'"),
    ("# dead\n10,0\n", "dead tile (10, 0) is not on the wafer"),
])
def test_wafer_refuses_bad_defect_maps(tmp_path, defects, message):
    (tmp_path / "defects.txt").write_text(defects)
    status, out, err = tessera("wafer", "--preset", "test", "--wafer", "2x2", "--die", "4x4",
                               "--defects", str(tmp_path / "defects.txt"),
                               "--json", str(tmp_path / "wafer.json"))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "wafer.json").exists()


def test_wafer_refuses_a_shape_beyond_the_coordinates(tmp_path):
    status, _, err = tessera("wafer", "--preset", "test", "--wafer", "100x1", "--die", "4x4")
    assert status == 2 and "XY coordinates reach 256x256" in err


def test_wafer_shows_the_remap(tmp_path):
    (tmp_path / "defects.txt").write_text("0,0\n7,5\n")
    status, out, err = tessera("wafer", "--preset", "test", "--wafer", "2x2", "--die", "4x4",
                               "--defects", str(tmp_path / "defects.txt"))
    assert status == 0, err
    rows = [line.strip() for line in out.splitlines()[2:]]
    assert rows[0] == "xoooo oooo-"        # row 0 of die (0, 0) shifts past its dead tile
    assert rows[5] == "oooo- ooxoo"        # the dead tile of die (1, 1), row 1
    assert all(row.count("o") == 8 for row in rows)


def _weight_file(path, damage=None):
    from host import model
    config = model.ModelConfig()
    model.save_weights(path, config, model.random_weights(config))
    if damage:
        path.write_bytes(damage(path.read_bytes()))
    return str(path)


SEEDED = ["--model", "seeded"]
STORIES = "host/models/stories260K.bin"


@pytest.mark.parametrize("args, message", [
    (SEEDED + ["--prompt", "x" * 60], "take 75 positions, more than the context of 64"),
    (SEEDED + ["--prompt", ""], "the prompt is empty"),
    (SEEDED + ["--wafer", "1x1", "--die", "2x2"], "classifier has no tile"),
    (["--tokens", "0"], "--tokens must be at least 1"),
    (["--weights", "{tmp}/missing.bin"], "cannot read weight file"),
    (["--weights", "{tmp}/short.bin"], "the file ends inside"),
    (["--weights", "{tmp}/other.bin"], "is too short for a llama2.c checkpoint"),
    (["--defects", "{tmp}/defects.txt"], "row 1 has 2 dead tiles"),
    (["--prompt", "a", "--prompt", "b", "--users", "3"], "2 prompts for 3 users"),
    (["--users", "0"], "--users must be at least 1"),
    (SEEDED + ["--users", "12"],
     "12 users need more KV cache than layer 0's attention tiles hold: 9 fit"),
    (SEEDED + ["--users", "40"], "a generated token's user tag has room for 31"),
    (["--users", "32"], "a generated token's user tag has room for 31"),   # 9-bit tokens
    (["--prompts", "{tmp}/missing.txt"], "cannot read"),
    (["--prompts", "{tmp}/empty.txt"], "empty.txt holds no prompts"),
    (SEEDED + ["--wafers", "3"], "3 wafers for a 2-layer model: each wafer needs a layer"),
    (["--wafers", "0"], "--wafers must be at least 1"),
    (["--clock", "0"], "--clock must be a positive number of GHz"),
    (["--wafers", "2", "--wafer-link-us", "0"], "needs a positive latency and bandwidth"),
    (["--layers", "0"], "model n_layers must be a positive integer, not 0"),
    (["--layers", "3", "--weights", "{tmp}/short.bin"], "--layers sets the depth of the seeded"),
    (["--layers", "3", "--wafers", "4"], "4 wafers for a 3-layer model"),
    (["--threads", "0"], "--threads must be at least 1, not 0"),
    (["--heatmap", "{tmp}/wafer.jpg"], "--heatmap writes a PNG; name it *.png"),
    (["--heatmap", "{tmp}/empty.txt/wafer.png"], "cannot write there"),
    (["--trace", "{tmp}/trace.txt"], "--trace writes a JSON trace; name it *.json"),
    (["--trace", "{tmp}/trace.json", "--harness", "dies"],
     "--trace records the vector operations on the tile harness in one process"),
    (["--trace-cycles", "0:10"], "--trace-cycles goes with --trace FILE.json"),
    (["--trace", "{tmp}/trace.json", "--trace-cycles", "10:10"],
     "--trace-cycles 10:10: no cycles (A to B - 1 needs A < B)"),
    (["--cosim", "mpi"], "--cosim mpi runs under mpiexec: mpiexec -n N"),
    (["--cosim", "multiprocessing", "--workers", "3"], "3 workers for 2 dies: from 2 to one"),
    (["--cosim", "multiprocessing", "--workers", "1"], "1 workers for 2 dies: from 2 to one"),
    (["--cosim", "threads"], "argument --cosim: invalid choice: 'threads'"),
    # The llama2.c models.
    (["--model", "{tmp}/big.bin", "--tokenizer", "host/models/tok512.bin"],
     "layer 0 qkv needs"),
    (["--model", STORIES, "--tokenizer", "{tmp}/tok300.bin"],
     "holds 300 tokens, fewer than the vocabulary size 512"),
    (["--model", STORIES, "--tokenizer", "{tmp}/torn.bin"], "the file ends inside token"),
    (["--model", STORIES], "needs --tokenizer FILE"),
    (["--context", "8", "--prompt", "Once upon a time"], "more than the context of 8"),
    (["--context", "600"], "--context 600 exceeds the model's context of 512"),
    # Two users' keys make rows past a descriptor's stride: a shortfall, not the assembler's.
    (["--context", "512", "--users", "2"],
     "2 users need more KV cache than layer 0's attention tiles hold: 1 fit"),
    (["--dtype", "fp8"], "invalid choice: 'fp8'"),
    (["--model", "nosuch"], "unknown model 'nosuch'"),
    (["--preset", "default"], "--dtype fp16 needs tiles with float lanes"),
    (["--tokenizer", "host/models/tok512.bin", "--layers", "2"], "takes no --tokenizer"),
    (["--head-tiles", "3"], "4 KV heads do not split over 3 tiles here (it splits over 1, 2, 4)"),
    (SEEDED + ["--head-tiles", "2"], "do not split over 2 tiles here (it splits over 1)"),
])
def test_run_refuses_bad_input_before_running(tmp_path, args, message):
    _weight_file(tmp_path / "short.bin", lambda blob: blob[:-100])
    (tmp_path / "other.bin").write_bytes(b"GGUF")
    (tmp_path / "defects.txt").write_text("0,1\n2,1\n")
    (tmp_path / "empty.txt").write_text("")
    _tokenizer_files(tmp_path)
    _big_checkpoint(tmp_path / "big.bin")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    status, stdout, stderr = tessera("run", *args, "--json", str(tmp_path / "run.json"))
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "run.json").exists()


def _tokenizer_files(directory):
    """tok512.bin cut after 300 tokens (a vocabulary smaller than the model's), and torn
    inside a token's piece (a malformed file)."""
    blob = Path("host/models/tok512.bin").read_bytes()
    offset = 4
    for _ in range(300):
        _, length = struct.unpack_from("<fi", blob, offset)
        offset += 8 + length
    (directory / "tok300.bin").write_bytes(blob[:offset])
    (directory / "torn.bin").write_bytes(blob[:offset + 9])


def _big_checkpoint(path):
    """A llama2.c checkpoint whose q, k, v weights (dim 256: 256 KiB at fp16) fit no tile."""
    from host import model
    config = model.ModelConfig(dim=256, hidden_dim=256, n_layers=1, n_heads=8, n_kv_heads=8,
                               vocab_size=512, seq_len=64)
    write_llama2c(path, config, model.random_weights(config), shared=True)


def test_run_plan_prints_the_placement_without_running(tmp_path):
    status, stdout, stderr = tessera("run", *SEEDED, "--plan", "--wafer", "1x1", "--die", "3x2")
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert lines[1].split() == ["A0", "F0", "A1"] and lines[2].split() == [".", "C", "F1"]


def test_run_layers_sets_the_seeded_models_depth():
    status, stdout, stderr = tessera("run", "--plan", "--layers", "3", "--wafer", "1x1")
    assert status == 0, stderr
    assert "seeded at int8" in stdout and "(3 layers, dim 32, context 64)" in stdout
    placed = stdout.split()
    assert "F2" in placed and "A3" not in placed


def test_bench_pipeline_writes_the_points_and_the_chart(tmp_path):
    status, stdout, stderr = tessera("bench", "pipeline", "--users", "1,2", "--tokens", "2",
                                     "--attention", "whole", "--prefill-lengths", "2,6", "--json",
                                     str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.png"))
    assert status == 0, stderr
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["pipeline_stages"] == 5 and report["match_reference"] is True
    # U = P is added to the users asked for: the targets are set there.
    one, two, five = report["points"]
    assert (one["users"], two["users"], five["users"]) == (1, 2, 5)
    assert report["at_users_equal_stages"]["users"] == 5
    assert two["aggregate_tokens_per_cycle"] > 1.5 * one["aggregate_tokens_per_cycle"]
    assert two["per_user_tokens_per_cycle"] > 0.9 * one["per_user_tokens_per_cycle"]
    # What sets the pace: here an attention tile is the busiest stage, and no stage is
    # busy for longer than the spacing of its outputs.
    load = two["stage_load"]
    assert max(load, key=lambda s: s["busy_cycles"])["stage"].endswith("attention")
    assert all(s["busy_cycles"] < s["period_cycles"] for s in load)
    short, long = report["prefill"]
    assert short["time_to_first_token_cycles"] < long["time_to_first_token_cycles"]
    # Prompt tokens go back to back: more of them a cycle than decode tokens.
    assert long["vs_single_user_decode"] > 1.5
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("attention, users, split", [
    ("auto", 1, False), ("auto", 2, True), ("whole", 4, False), ("split", 1, True)])
def test_auto_attention_splits_for_more_than_one_user(attention, users, split):
    layout = _layout(argparse.Namespace(attention=attention, ffn_tiles=None, head_tiles=None),
                     users)
    assert layout == {"split_attention": split, "ffn_tiles": None, "head_tiles": None}


def test_bench_wafers_measures_the_links_cost_against_depth(tmp_path):
    # Links of 0.5 us (550 cycles) keep the runs short; the cost is the same arithmetic.
    status, stdout, stderr = tessera("bench", "wafers", "--layers", "2,3", "--tokens", "2",
                                     "--wafer-link-us", "0.5", "--json",
                                     str(tmp_path / "w.json"), "--plot", str(tmp_path / "w.png"))
    assert status == 0, stderr
    report = json.loads((tmp_path / "w.json").read_text())
    assert report["match_reference"] is True and report["link_latency_cycles"] == 550
    two, three = report["points"]
    assert (two["layers"], three["layers"]) == (2, 3)
    # Only activations cross, twice a token (the stream down, the token back): the
    # links add two latencies a token, whatever the depth, and deeper models feel less.
    for point in report["points"]:
        assert abs(point["extra_cycles_per_token"] - 2 * 550) < 20, point
    assert three["one_wafer_cycles_per_token"] > two["one_wafer_cycles_per_token"] + 1000
    assert three["wafer_latency_impact"] < two["wafer_latency_impact"]
    projection = report["projection"]
    line = projection["one_wafer_cycles_per_token"]
    at_target = line["intercept"] + line["per_layer"] * projection["layers_for_target"]
    assert abs(projection["extra_cycles_per_token"] / at_target - 0.05) < 1e-9
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--layers", "1"], "--layers: 1 layer cannot be split over 2 wafers"),
    (["--layers", "2,x"], "--layers expects whole numbers"),
    (["--wafers", "1"], "--wafers must be at least 2 to split the model"),
    (["--wafer-link-tbps", "-1"], "needs a positive latency and bandwidth"),
    (["--plot", "{tmp}/w.svg"], "--plot writes a PNG"),
])
def test_bench_wafers_refuses_bad_input_before_running(tmp_path, args, message):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    status, stdout, stderr = tessera("bench", "wafers", *args, "--json", str(tmp_path / "w.json"))
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "w.json").exists()
