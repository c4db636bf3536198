"""pytest setup: the repository root on ``sys.path``, and the cocotb runner fixture.

The cocotb runner passes ``sys.path`` to the simulator's Python as
``PYTHONPATH``, so putting the root here also makes ``tb.*``, ``sim.*`` and
``rtl.*`` importable inside the simulations.
"""

import os
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _failures(results_xml):
    """The failure messages recorded in a cocotb results file."""
    try:
        root = ElementTree.parse(results_xml).getroot()
    except (OSError, ElementTree.ParseError) as error:
        return [f"no results file {results_xml}: {error}"]
    messages = []
    for case in root.iter("testcase"):
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            messages.append(f"{case.get('name')}: {failure.get('message') or failure.text}")
    return messages


def _tail(path, lines=60):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def run_cocotb(kind, params, sim, module, test_filter, test_id, env=None):
    """Build ``kind`` ("router"/"mesh") at ``params`` for ``sim`` and run the cocotb
    tests of ``module`` that match ``test_filter``; fails the pytest test on any
    cocotb failure, on a crash, and when no test ran.  A missing simulator fails
    too (``sim.build`` raises).  Returns (results xml path, wall seconds)."""
    from cocotb_tools.check_results import get_results

    from sim import build
    started = time.monotonic()
    # `make coverage` sets TESSERA_COVERAGE=1: a coverage build, results under coverage/.
    coverage = os.environ.get("TESSERA_COVERAGE") == "1"
    verilog_build = build.verilog(kind, params, emit_src=coverage)
    runner, test_dir = build.cocotb_build(sim, verilog_build,
                                          f"coverage/{test_id}" if coverage else test_id,
                                          coverage=coverage)
    (test_dir / "coverage.dat").unlink(missing_ok=True)   # a failed run leaves none
    build.cocotb_waves_file(test_dir).unlink(missing_ok=True)   # nor an earlier waveform
    # A fixed default keeps CI deterministic; set TESSERA_SEED to explore others.
    seed = os.environ.get("TESSERA_SEED", "1")
    extra_env = {"TESSERA_PARAMS": params.to_json(), "TESSERA_SEED": seed, **(env or {})}
    # The runner lets the process environment override extra_env; keep them the same.
    extra_env.update({k: v for k, v in os.environ.items() if k.startswith("TESSERA_")})
    log = test_dir / "sim.log"
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    reproduce = "reproduce: " + " ".join(
        [f"{k}={v}" for k, v in sorted(extra_env.items())
         if k.startswith("TESSERA_") and k != "TESSERA_PARAMS"] + [f"pytest '{node}'"])
    results, failure = None, None
    try:
        # hdl_toplevel_lang: when the build is cached, sim.build hands back a runner whose
        # build() never ran, so it cannot infer the language from its sources.
        results = runner.test(hdl_toplevel=verilog_build.top, hdl_toplevel_lang="verilog",
                              test_module=module, test_dir=test_dir, build_dir=runner.build_dir,
                              extra_env=extra_env, test_filter=test_filter, log_file=log,
                              **build.cocotb_waves_arguments(sim, test_dir))
    except SystemExit as exit_:  # the runner exits when a test failed or the simulator died
        candidates = sorted(test_dir.glob("*.result.xml"), key=lambda p: p.stat().st_mtime)
        messages = _failures(candidates[-1]) if candidates else ["no results file"]
        failure = (f"cocotb run failed (exit {exit_.code}) on {sim}:\n" + "\n".join(messages)
                   + f"\n{reproduce}\n--- log tail ({log}) ---\n" + _tail(log))
    except RuntimeError as error:  # the simulator could not be run
        failure = f"{sim} failed: {error}\n--- log tail ({log}) ---\n{_tail(log)}"
    if failure:
        pytest.fail(failure, pytrace=False)
    tests, failed = get_results(Path(results))
    if tests == 0:
        pytest.fail(f"no cocotb test of {module} matched {test_filter!r}", pytrace=False)
    if failed:
        pytest.fail(f"{failed} of {tests} cocotb tests failed on {sim}:\n"
                    + "\n".join(_failures(results)) + f"\n{reproduce}", pytrace=False)
    return results, time.monotonic() - started


@pytest.fixture
def cocotb_run():
    return run_cocotb


@pytest.fixture
def seed():
    """The seed of a random test: ``TESSERA_SEED`` (1 by default, so CI is deterministic);
    failing assertions quote it as a reproduce line."""
    return int(os.environ.get("TESSERA_SEED", "1"), 0)


#: Test files that wait minutes on a build (the tile's synthesis): first in the order,
#: so that one worker builds while the other takes the rest, rather than the suite
#: ending on one worker alone.
LONG_BUILDS_FIRST = ("test_synth.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONG_BUILDS_FIRST)   # stable
