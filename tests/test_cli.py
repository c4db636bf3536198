"""The `tessera` command's contract for bad input: one line, exit status 2, nothing written."""

import json
import subprocess
import sys

import pytest

from host.cli import main


def tessera(*args):
    result = subprocess.run([sys.executable, "-m", "host.cli", *args],
                            capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("args, message", [
    (["verilog", "router", "--set", "colors=0"], "colors must be 1..32, not 0"),
    (["verilog", "router", "--set", "colors=33"], "colors must be 1..32, not 33"),
    (["verilog", "mesh", "--set", "width=0"], "mesh must be 1..255 tiles on each side"),
    (["verilog", "router", "--set", "queue_depth=0"], "queue_depth must be 1..64, not 0"),
    (["verilog", "router", "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["verilog", "router", "--set", "colors"], "--set expects key=value"),
    (["verilog", "router", "--set", "colors=many"], "colors must be an integer"),
    (["verilog", "router", "--preset", "huge"], "unknown preset 'huge'"),
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
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
    out = tmp_path / "out"
    extra = ["-o", str(out)] if args[0] == "verilog" else []
    extra += ["--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")] \
        if args[:2] == ["bench", "fabric"] else []
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
