"""The import rules of docs/DESIGN.md, enforced: each package imports only the packages below it.

Read from the source with ast (imports inside functions count too), so a rule broken anywhere fails
here, naming the module, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "orca_hpc"

BASE = {"errors", "atomic", "logs", "shipped", "perms", "clock", "jsontext"}
# package -> the orca_hpc packages (or base modules) it may import, besides itself
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "shipped": set(),
    "perms": set(),
    "clock": set(),
    "jsontext": set(),
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


def _loaded_by(argv: list[str], heavy: tuple[str, ...]) -> tuple[str, list[str]]:
    """The output of ``orca-hpc ARGV`` run in a fresh interpreter, and which of ``heavy`` it imported."""
    import subprocess
    import sys

    code = (
        "import sys; from orca_hpc.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('loaded:' + ','.join(sorted(m for m in sys.modules if m.startswith({heavy!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    head, _, loaded = out.rpartition("loaded:")
    return head, [m for m in loaded.strip().split(",") if m]


def test_the_cli_imports_only_the_command_that_runs() -> None:
    # --version: click and nothing of the house, not even the log (logging is set up when a command runs).
    heavy = ("submitit", "jinja2", "filelock", "orca_hpc.ledger", "orca_hpc.controller", "orca_hpc.scheduler")
    out, loaded = _loaded_by(["--version"], (*heavy, "orca_hpc.logs", "logging", "pathlib"))
    assert out.startswith("orca-hpc, version") and loaded == []


def test_an_idle_status_loads_no_scheduler_lock_parser_or_mail(tmp_path: Path) -> None:
    # No job to ask about or send: the ledger is read once, without the lock (filelock), the scheduler,
    # the reconcile, the input parser, the workflow or the mail modules.
    from orca_hpc.config.campaign import init_campaign

    camp = init_campaign(tmp_path / "camp", "local-slurm")
    heavy = (
        "submitit", "jinja2", "filelock", "smtplib", "orca_hpc.scheduler.slurm", "orca_hpc.scheduler.local",
        "orca_hpc.controller.reconcile", "orca_hpc.controller.submit", "orca_hpc.orca.inputs",
        "orca_hpc.config.workflow", "orca_hpc.molecules", "orca_hpc.notify",
    )  # fmt: skip
    out, loaded = _loaded_by(["-C", str(camp.root), "status"], heavy)
    assert "no jobs" in out and loaded == []
    # A pause that may end is a reconcile's work: the same status reconciles then (under the lock).
    ledger = camp.ledger()
    with ledger.lock, ledger.transaction() as txn:
        txn.meta["environment"] = {"paused": {"since": "2026-01-01T00:00:00Z", "reason": "mpi"}}
    out, loaded = _loaded_by(["-C", str(camp.root), "status"], heavy)
    assert "PAUSED" in out and "orca_hpc.controller.reconcile" in loaded and "filelock" in loaded


def test_the_design_map_names_every_module_and_only_modules_that_exist() -> None:
    # docs/DESIGN.md's "Packages" table is the map: a row per package (the first row the base
    # modules), naming each of its modules in backticks. A module added, renamed or deleted without
    # the map following fails here, named.
    import re

    design = (PACKAGE.parent / "docs" / "DESIGN.md").read_text()
    table = design.split("## Packages", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`"):
            continue
        packages = re.findall(r"`(\w+)/`", cells[1])
        modules = re.findall(r"`(\w+\.py)`", cells[1] + (cells[2] if packages else ""))
        folder = packages[0] + "/" if packages else ""
        named |= {folder + m for m in modules if m not in ("__init__.py", "__main__.py")}
    real = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(real - named) == [], "modules docs/DESIGN.md does not name"
    assert sorted(named - real) == [], "modules docs/DESIGN.md names that do not exist"
