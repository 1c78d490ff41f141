"""The shell scripts in scripts/: each parses, and the GPU runners refuse a stage they do not know
with a message and exit code 2 before touching a GPU."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / 'scripts').glob('*.sh'))


@pytest.mark.parametrize('script', SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_shell_script_parses(script):
    subprocess.run(['bash', '-n', str(script)], check=True)


@pytest.mark.parametrize('script, words', [('sim2real_gpu.sh', 'sim, hifi, proxy or all'),
                                           ('speed_gpu.sh', 'PART')])
def test_a_gpu_runner_refuses_an_unknown_stage_with_exit_code_2(tmp_path, script, words):
    r = subprocess.run(['bash', str(ROOT / 'scripts' / script), 'bogus', str(tmp_path / 'out')],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
