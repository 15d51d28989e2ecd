"""The import rules of docs/DESIGN.md, enforced: each package imports only the packages below it.

Read from the source with ast (imports inside functions count too), so a rule broken anywhere fails
here, naming the module, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orca_hpc"

BASE = {"errors", "atomic", "logs", "shipped", "perms", "clock"}
# package -> the orca_hpc packages (or base modules) it may import, besides itself
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "shipped": set(),
    "perms": set(),
    "clock": set(),
    "logs": {"errors", "atomic"},
    "orca": BASE,
    "emulator": BASE,  # never orca/: the emulator must not share the classifier's assumptions
    "ledger": BASE,
    "attempt": BASE | {"orca"},
    "molecules": BASE | {"orca"},
    "runner": BASE | {"orca", "attempt"},
    "config": BASE | {"ledger", "orca"},
    "scheduler": BASE | {"config"},
    "notify": BASE | {"config", "ledger"},
    "controller": BASE | {"orca", "molecules", "attempt", "config", "ledger", "scheduler", "notify"},
    "cli": BASE | {"orca", "molecules", "attempt", "config", "ledger", "scheduler", "notify", "controller"},
    "__init__": {"api"},
    "api": BASE | {"orca", "molecules", "attempt", "config", "ledger", "scheduler", "notify", "controller"},
    "__main__": {"cli"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "orca_hpc":
                out.extend((node.lineno, f"orca_hpc.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return [(line, name) for line, name in out if name.split(".")[0] == "orca_hpc"]


def test_every_import_follows_the_layering() -> None:
    problems = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40
    for path in modules:
        rel = path.relative_to(PACKAGE)
        owner = rel.parts[0].removesuffix(".py")
        assert owner in ALLOWED, f"{rel}: a package or module not in the map of docs/DESIGN.md"
        for line, name in _imports(path):
            parts = name.split(".")
            if len(parts) == 1:
                continue  # `from orca_hpc import __version__`
            target = parts[1]
            if target != owner and not target.startswith("__") and target not in ALLOWED[owner]:
                problems.append(f"{rel}:{line}: {owner} may not import {name}")
    assert not problems, "\n".join(problems)


def test_the_runner_and_emulator_start_without_the_controller() -> None:
    # They start once per array task: nothing of the ledger, scheduler or submitit comes along.
    import subprocess
    import sys

    code = (
        "import sys, orca_hpc.runner.run, orca_hpc.emulator.program;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('submitit', 'jinja2', 'filelock', 'click')"
        " or m.startswith(('orca_hpc.ledger', 'orca_hpc.scheduler', 'orca_hpc.controller'))];"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_cli_imports_only_the_command_that_runs() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from orca_hpc.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('submitit', 'jinja2', 'filelock', 'orca_hpc.ledger', 'orca_hpc.controller',"
        " 'orca_hpc.scheduler')\n"
        "print('loaded:' + ','.join(sorted(m for m in sys.modules if m.startswith(heavy))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("orca-hpc, version") and out.splitlines()[-1] == "loaded:"
