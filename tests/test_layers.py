"""Imports run one way: every import in rtl/, sim/, host/ and tb/, at any depth (inside
functions too) and relative ones resolved, goes to the importer's own layer or to a
tier below it.  A failure names the file, the line and the two layers."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The layers, lowest tier first.  A module may import its own layer and any layer of a
#: lower tier; the layers of one tier do not import each other.  A module belongs to the
#: longest layer that names it or a package above it (``host.bench.speed``: ``host.bench``).
TIERS = (
    ("rtl",),                  # the hardware
    ("sim",),                  # its simulations: ISS, models, builds, sessions on the RTL
    ("host",),                 # the toolchain, the model, the kernels, the wafer, co-simulation
    ("host.bench",),           # the measurements
    ("host.cli", "tb"),        # the tessera command; the cocotb testbenches
    ("tests",),
)
TIER = {layer: tier for tier, layers in enumerate(TIERS) for layer in layers}
CHECKED = ("rtl", "sim", "host", "tb")


def layer_of(module):
    """The layer of a dotted module name, or None for a module not of this project."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in TIER:
            return ".".join(parts[:end])
    return None


def module_of(path):
    """``host/bench/speed.py`` -> ``host.bench.speed``; ``host/bench/__init__.py`` ->
    ``host.bench``."""
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node, path):
    """The dotted names an import statement reaches: ``from a import b`` reaches ``a.b``,
    which is module ``a.b`` or a name in ``a``; either way it is in ``a.b``'s layer."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module_of(path).split(".")
        if Path(path).name != "__init__.py":
            package = package[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def violations(path, source):
    """``path:line: ...`` for every import in ``source`` (the text of ``path``, relative
    to the repository) that runs against :data:`TIERS`."""
    importer = layer_of(module_of(path))
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        against = {}
        for name in imported(node, path):
            target = layer_of(name)
            if target is not None and target != importer and TIER[target] >= TIER[importer]:
                against.setdefault(target, []).append(name)
        found += [(node.lineno, f"{path}:{node.lineno}: {importer} imports {', '.join(names)} "
                                f"({target}), which is not below it")
                  for target, names in against.items()]
    return [line for _, line in sorted(found)]


def sources():
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT)


def test_imports_run_one_way():
    files = list(sources())
    # Every layer below the tests holds modules, so the scan saw each of them.
    assert {layer_of(module_of(path)) for path in files} == set(TIER) - {"tests"}
    found = [line for path in files for line in violations(path, (ROOT / path).read_text())]
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_the_check_finds_an_import_against_the_layers():
    assert violations(Path("sim/example.py"), "import rtl.isa\n\ndef f():\n"
                      "    from host.bench import speed\n") == [
        "sim/example.py:4: sim imports host.bench.speed (host.bench), which is not below it"]
    # Relative imports resolve against the file's package.
    assert violations(Path("host/bench/example.py"), "from .. import cli, wafer\n") == [
        "host/bench/example.py:1: host.bench imports host.cli (host.cli), which is not below it"]
    assert violations(Path("host/bench/__init__.py"), "from . import speed\n") == []
    # One tier's layers do not import each other, and nothing imports the tests.
    assert len(violations(Path("tb/example.py"),
                          "from host import cli\nimport tests.conftest\n")) == 2
    assert violations(Path("host/cli.py"), "import tb\n") != []


def test_the_check_lets_imports_run_down():
    source = ("import numpy\nfrom host.asm import Builder\nfrom host.bench.speed import run\n"
              "from sim.core_session import Case\nfrom . import seeded\n")
    assert violations(Path("tb/example.py"), source) == []
    assert violations(Path("host/example.py"),
                      "from .kernels import stages\nimport sim.iss\n") == []
