"""The library's shape: it never imports Dagster, and no module grows past the size a reader takes in."""

import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "seestocks_rank"


def test_the_library_imports_no_dagster():
    code = (
        "import importlib, pkgutil, sys, seestocks_rank\n"
        "for m in pkgutil.walk_packages(seestocks_rank.__path__, 'seestocks_rank.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'dagster' or n.startswith('dagster.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_library_module_is_longer_than_about_400_lines():
    lengths = {p.relative_to(LIBRARY).as_posix(): len(p.read_text().splitlines()) for p in LIBRARY.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 420} == {}
