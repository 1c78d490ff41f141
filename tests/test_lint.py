"""Linters as tests, the ament convention (ament_flake8, ament_pep257) in ruff's words: pyflakes,
pycodestyle (lines up to 110 characters) and pydocstyle over the whole repository, as configured
in ruff.toml at its root."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    """The ruff of this interpreter's environment (requirements-dev.txt pins it)."""
    exe = Path(sys.executable).with_name("ruff")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("ruff")
    assert found, "ruff is not installed: pip install -r requirements-dev.txt"
    return [found]


def test_the_python_code_passes_the_linters():
    r = subprocess.run(_ruff() + ["check", "--no-cache", "--output-format", "concise", str(ROOT)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_linters_catch_what_they_are_there_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('import os\n\n\ndef f():\n    """Two  lines\n       badly indented."""\n'
                   f'    return "{"x" * 120}"\n')
    r = subprocess.run(_ruff() + ["check", "--no-cache", "--config", str(ROOT / "ruff.toml"),
                                  "--output-format", "concise", str(bad)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    for code in ("F401", "E501"):
        assert code in r.stdout, r.stdout
