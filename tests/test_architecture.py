"""The arrows between the parts of the package point one way: the import contracts of pyproject.toml
([tool.importlinter]) hold — the domain knows no HTTP, routers hold no SQL and never import each other, the import
framework knows no file format, each open-data format stands alone, the command line calls services only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from geo_service.settings import PROJECT_ROOT


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout, run.stdout[-2000:]


def test_no_two_modules_share_a_name():
    names: dict[str, list[str]] = {}
    for path in (PROJECT_ROOT / "geo_service").rglob("*.py"):
        if path.name != "__init__.py" and "migrations" not in path.parts:
            names.setdefault(path.stem, []).append(str(path.relative_to(PROJECT_ROOT)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
