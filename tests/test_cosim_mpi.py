"""Co-simulation on MPI (host/cosim_mpi.py): `mpiexec -n 2` on this machine gives the
cycles and tokens of one process; a failing rank ends the run, in bounded time.

The MPI runs start `mpiexec` from the venv (the mpich wheel) as a subprocess.  This
file is also the program of the ranks that the tests start: run as a script, it drives
test_wafer's parallel scenario on the ranks, or serves `tessera run` as a rank that fails.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
#: Seconds any MPI run here may take before the test fails: nothing may hang.
BOUND = 120
#: test_wafer's parallel scenarios: (link latency, harness).
SCENARIOS = [(latency, harness) for latency in (1, 4) for harness in ("tiles", "dies")]
#: A run of two wafers of one 4x4 die each, split between them: a link of 5,500 cycles.
TWO_WAFERS = ["run", "--model", "seeded", "--wafer", "1x1", "--wafers", "2", "--tokens", "3"]


@pytest.fixture(scope="module", autouse=True)
def _models_built():
    """The harness libraries the runs load, built here first: a cold build takes minutes
    on a loaded machine, which the runs' BOUND is not for."""
    from test_wafer import DIE, PARAMS

    from host.wafer import library
    from rtl.params import preset
    for harness in ("tiles", "dies"):
        library(PARAMS.replace(width=DIE[0], height=DIE[1]), harness)
    library(preset("default").replace(width=4, height=4), "tiles")   # TWO_WAFERS's


def _mpiexec(*ranks):
    """``mpiexec`` with one program a ``(count, argv)`` of ``ranks`` (MPMD, ``:``)."""
    command = [MPIEXEC]
    for count, argv in ranks:
        command += [*([":"] if len(command) > 1 else []), "-n", str(count), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=BOUND, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def _tessera(*args):
    return [sys.executable, "-m", "host.cli", *args]


@pytest.fixture(scope="module")
def wafer_scenarios(tmp_path_factory):
    """Every scenario run once on two ranks, one after the other on the same ranks."""
    out = tmp_path_factory.mktemp("mpi") / "scenarios.pickle"
    result = _mpiexec((2, [sys.executable, __file__, "scenarios", str(out)]))
    assert result.returncode == 0, result.stderr
    return pickle.loads(out.read_bytes())


@pytest.mark.parametrize("latency, harness", SCENARIOS)
def test_two_ranks_match_one_process_on_the_wafer_scenarios(wafer_scenarios, latency, harness):
    from test_wafer import DIE, PARAMS, _drive

    from host.wafer import Wafer
    single = _drive(Wafer((2, 2), DIE, PARAMS, latency=latency, harness=harness), 120)
    assert len(single[0]["east", 1]) == 30                      # the stream arrived
    assert wafer_scenarios[latency, harness] == single


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "one.json"
    result = subprocess.run(_tessera(*TWO_WAFERS, "--json", str(out)), capture_output=True,
                            text=True, timeout=BOUND, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("cosim", ["mpi", "multiprocessing"])
def test_a_run_split_at_the_wafer_link_matches_one_process(one_process_run, tmp_path, cosim):
    out = tmp_path / "split.json"
    command = _tessera(*TWO_WAFERS, "--cosim", cosim, "--json", str(out))
    result = (_mpiexec((2, command)) if cosim == "mpi" else
              subprocess.run(command, capture_output=True, text=True, timeout=BOUND, cwd=ROOT))
    assert result.returncode == 0, result.stderr
    split = json.loads(out.read_text())
    assert split["match_reference"] and split["simulated"]["processes"] == 2
    for key in ("users", "cycles", "stage_cycles"):
        assert split[key] == one_process_run[key], key
    assert (split["simulated"]["tile_cycles_evaluated"]
            == one_process_run["simulated"]["tile_cycles_evaluated"])


def test_a_rank_that_raises_ends_the_run_with_one_line_naming_it(tmp_path):
    result = _mpiexec((1, _tessera(*TWO_WAFERS, "--cosim", "mpi")),
                      (1, [sys.executable, __file__, "raise"]))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "tessera: error: rank 1: RuntimeError: the window failed on purpose"
    assert "Traceback" not in result.stderr


def test_a_rank_whose_simulation_dies_ends_the_run_with_one_line_naming_it():
    result = _mpiexec((1, _tessera(*TWO_WAFERS, "--cosim", "mpi")),
                      (1, [sys.executable, __file__, "worker-dies"]))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == \
        "tessera: error: rank 1: its worker process died (exit status -9)"


def test_a_rank_that_dies_ends_the_run_nonzero_in_bounded_time():
    # mpiexec ends every rank when one dies, and reports it (the process, not the rank).
    result = _mpiexec((1, _tessera(*TWO_WAFERS, "--cosim", "mpi")),
                      (1, [sys.executable, __file__, "rank-dies"]))  # within BOUND seconds
    assert result.returncode != 0
    assert "Killed (signal 9)" in result.stdout + result.stderr


@pytest.mark.parametrize("ranks, args, message", [
    (1, [], "--cosim mpi needs 2 or more ranks (mpiexec -n N, N >= 2), not 1"),
    (3, [], "3 ranks for 2 dies: from 2 to one a die"),
    (2, ["--workers", "2"], "--workers counts the processes of --cosim multiprocessing; "
                            "with --cosim mpi the ranks are mpiexec's -n"),
])
def test_bad_mpi_runs_are_one_line_and_exit_status_2(tmp_path, ranks, args, message):
    result = _mpiexec((ranks, _tessera(*TWO_WAFERS, "--cosim", "mpi", *args, "--json",
                                       str(tmp_path / "run.json"))))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"tessera: error: {message}\n"
    assert not (tmp_path / "run.json").exists()


def _scenarios(out):
    """Rank 0: every scenario on a ParallelWafer over the ranks; the others serve."""
    from test_wafer import DIE, PARAMS, _drive

    from host import cosim_mpi
    from host.cosim import ParallelWafer
    if cosim_mpi.rank():
        cosim_mpi.serve_ranks()
        return
    results = {}
    try:
        for latency, harness in SCENARIOS:
            wafer = ParallelWafer((2, 2), DIE, PARAMS, latency=latency,
                                  transport=cosim_mpi.Ranks(), harness=harness)
            try:
                results[latency, harness] = _drive(wafer, 120)
            finally:
                wafer.close()
    finally:
        cosim_mpi.release_ranks()
    Path(out).write_bytes(pickle.dumps(results))


def _failing_rank(how):
    """A rank of `tessera run --cosim mpi` whose first window (in its worker process)
    raises, kills the worker process or kills the rank."""
    from host import cosim, cosim_mpi

    def fail(*_):
        if how != "raise":
            os.kill(os.getpid() if how == "worker-dies" else os.getppid(), signal.SIGKILL)
        raise RuntimeError("the window failed on purpose")

    cosim._start_window = fail
    cosim_mpi.serve_ranks()


if __name__ == "__main__":
    if sys.argv[1] == "scenarios":
        _scenarios(sys.argv[2])
    else:
        _failing_rank(sys.argv[1])
