"""README.md: its first commands and every command of its walkthrough, run or checked.

The walkthrough (between ``<!-- walkthrough:start -->`` and ``<!-- walkthrough:end -->``) is cut
into its fenced ``bash`` commands; each must be covered by exactly one rule below, or the test
fails. The cheap ones are run as written (in a temporary folder, with a ROS_DOMAIN_ID of this
test run; the sim loop with 2 trials instead of 20, the collection with a 2 x 2 x 1 grid); the
long ones (training) have their subcommand and every flag checked against ``--help``; those for
a ROS 2 machine or Docker (``ros2 ...``, ``docker compose ...``) are checked against the
repository: launch file, launch arguments, topics, compose services. ``bash scripts/setup_env.sh``,
``bash scripts/test.sh`` and ``colcon build`` are what CI (.ci/run) runs.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip('rclpy')

from reach_bringup import launch_spec  # noqa: E402
from reach_bringup.probe import pick_domain_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()


def walkthrough_commands() -> list[str]:
    start, end = '<!-- walkthrough:start -->', '<!-- walkthrough:end -->'
    assert README.count(start) == 1 and README.count(end) == 1
    text = README[README.index(start):README.index(end)]
    cmds = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.splitlines():
            line = re.sub(r'\s+#\s.*$', '', line).strip()
            if line and not line.startswith('#'):
                cmds.append(line)
    return cmds


COMMANDS = walkthrough_commands()


def test_readme_starts_with_the_main_job_and_the_tests():
    first = re.search(r'```bash\n(.*?)```', README, re.S).group(1).strip().splitlines()
    assert first == ['bash scripts/run_main.sh', 'bash scripts/test.sh']
    assert 'bash scripts/test.sh' in (ROOT / '.ci' / 'run').read_text()


def test_walkthrough_covers_every_step():
    text = README[README.index('<!-- walkthrough:start -->'):]
    steps = re.findall(r'^### \d+\. (.*)$', text, re.M)[:9]
    assert steps == ['Install', 'Build and test', 'Run the sim loop', 'Watch it',
                     'Train each module', 'Adapt with your own images', 'Fine-tune end to end',
                     'Run on the robot', 'Safety notes for a real arm']
    assert len(COMMANDS) >= 25


# ------------------------------------------------------------------------ helpers
def env_for(domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED='1')
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return env


def run(cmd: str, cwd: Path, env: dict, timeout: float = 240.0) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout, executable='/bin/bash')
    return r


def _produced_earlier(path: str, index: int) -> bool:
    """runs/... and data/... paths must be the output of an earlier walkthrough command."""
    for cmd in COMMANDS[:index]:
        if re.search(rf'(--out |out_dir:=){re.escape(path.split("/model.pt")[0])}(\s|$)', cmd):
            return True
    return False


def check_paths(cmd: str, index: int):
    for tok in shlex.split(cmd):
        value = tok.split(':=', 1)[-1]
        if value.startswith(('runs/', 'data/')):
            if not re.search(rf'(--out |out_dir:=){re.escape(value)}(\s|$)', cmd):
                assert _produced_earlier(value, index), f'{value}: made by no earlier command'
        elif value.startswith(('src/', 'config/', 'launch/', 'docker/', 'scripts/')):
            assert (ROOT / value).exists(), f'{value} does not exist'


def help_text(argv: list[str]) -> str:
    return _help(tuple(argv))


@functools.lru_cache(maxsize=None)
def _help(argv: tuple) -> str:
    r = subprocess.run(list(argv) + ['--help'], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_flags(argv: list[str], n_sub: int):
    """argv[:n_sub] is the (sub)command; every --flag after it must be in its --help."""
    helptext = help_text(argv[:n_sub])
    for tok in argv[n_sub:]:
        if tok.startswith('--'):
            assert re.search(rf'{re.escape(tok.split("=")[0])}\b', helptext), \
                f'{" ".join(argv[:n_sub])} has no option {tok}'


def check_launch(name: str, args: list[str]):
    path = ROOT / 'launch' / name
    assert path.is_file(), f'no launch file {name}'
    installed = Path(launch_spec.launch_file(name))
    assert installed.is_file(), f'{name} is not installed by reach_bringup'
    spec = launch_spec.read(str(path))
    for a in args:
        k, _, _ = a.partition(':=')
        assert k in spec.arguments, f'{name} has no launch argument {k}'
    return spec


def graph_topics() -> set[str]:
    """Every topic a node of a launch file publishes, fully resolved."""
    import importlib
    topics = set()
    for f in sorted((ROOT / 'launch').glob('*.launch.py')):
        spec = launch_spec.read(str(f))
        for node in spec.nodes:
            mod = importlib.import_module(f'reach_ros.{node.executable}')
            remap = dict(node.remappings)
            ns = '/' + node.namespace.strip('/') if node.namespace.strip('/') else ''
            for t, (direction, _) in mod.TOPICS.items():
                if direction != 'pub':
                    continue
                name = remap.get(t, t)
                if name.startswith('~/'):
                    name = f'{ns}/{node.name}/{name[2:]}'
                elif not name.startswith('/'):
                    name = f'{ns}/{name}'
                topics.add(name)
    return topics


def check_ros2(argv: list[str]):
    if argv[1] == 'launch':
        assert argv[2] == 'reach_bringup'
        check_launch(argv[3], argv[4:])
    elif argv[1] == 'topic' and argv[2] == 'echo':
        assert argv[3] in graph_topics(), f'no node publishes {argv[3]}'
    else:
        pytest.fail(f'no rule for {argv}')


def check_docker(argv: list[str]):
    assert argv[:4] == ['docker', 'compose', '-f', 'docker/compose.yaml']
    compose = yaml.safe_load((ROOT / 'docker' / 'compose.yaml').read_text())
    rest = argv[4:]
    if rest[:1] == ['--profile']:
        profile = rest[1]
        rest = rest[2:]
    else:
        profile = None
    if rest == ['build']:
        return
    if rest[0] == 'up':
        service = compose['services'][rest[1]]
        assert service.get('profiles', [None])[0] == profile
        return
    assert rest[:2] == ['run', '--rm'], rest
    assert rest[2] in compose['services']
    inner = rest[3:]
    assert inner[:3] == ['python3', '-m', 'reach_bringup.run']
    check_run_args(inner[3:])


def check_run_args(args: list[str]):
    from reach_bringup import run as runner
    launch = args[0]
    check_launch(launch, [a for a in args[1:] if ':=' in a and not a.startswith('-')])
    helptext = help_text([sys.executable, '-m', 'reach_bringup.run'])
    for a in args[1:]:
        if a.startswith('--'):
            assert a in helptext, f'reach_bringup.run has no option {a}'
    assert runner.main is not None


# ------------------------------------------------------------------------ live runs
@pytest.fixture(scope='module')
def live(tmp_path_factory):
    """Run the cheap walkthrough commands once, in order, in a scratch folder."""
    work = tmp_path_factory.mktemp('walkthrough')
    env = env_for(pick_domain_id(21))
    results: dict[str, subprocess.CompletedProcess | str] = {}
    by_kind = {c: kind_of(c) for c in COMMANDS}

    # 3 + 4: the loop alone in the background, watched from "a second shell"
    loop_cmd = next(c for c, k in by_kind.items() if k == 'run-loop')
    loop = subprocess.Popen(loop_cmd + ' --timeout 90 --quiet', shell=True, cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, executable='/bin/bash')
    try:
        for c, k in by_kind.items():
            if k == 'echo':
                results[c] = run(c, work, env, timeout=60)
    finally:
        try:
            os.killpg(loop.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        out, _ = loop.communicate(timeout=60)
    results[loop_cmd] = subprocess.CompletedProcess(loop_cmd, loop.returncode, out, '')

    # 6: the collection rehearsal (a small grid), then the commands on its folder
    for c, k in by_kind.items():
        if k == 'collect-sim':
            results[c] = run(c + ' --quiet --param collect_images.grid_counts:=[2,2,1]'
                             ' --param collect_images.grid_min:=[-0.7,0.9,0.2]'
                             ' --param collect_images.grid_max:=[-0.5,1.2,0.2]', work, env, 120)
    for c, k in by_kind.items():
        if k == 'run-on-sim-frames':
            cmd = c.replace(' src/', f' {ROOT}/src/')
            results[c] = run(cmd, work, env, 180)
    # 3: the main job, 2 trials (the shipped 3-DoF controller when there is one)
    main_env = dict(env, REACH_SKIP_SETUP='1', REACH_TRIALS='2')
    results['bash scripts/run_main.sh'] = run('bash scripts/run_main.sh --quiet', ROOT,
                                              main_env, 300)
    # 2: colcon test of one package's part of tests/ (colcon.meta), and its result
    for c, k in by_kind.items():
        if k == 'colcon-test':
            results[c] = run(c, ROOT, env, 300)
    results['work'] = str(work)
    return results


def kind_of(cmd: str) -> str:
    argv = shlex.split(cmd)
    if cmd in ('bash scripts/setup_env.sh', 'bash scripts/test.sh', 'colcon build --symlink-install'):
        return 'ci'
    if cmd == '. scripts/env.sh':
        return 'env'
    if cmd == 'bash scripts/run_main.sh':
        return 'main'
    if argv[0] == 'colcon' and argv[1] in ('test', 'test-result'):
        return 'colcon-test'
    if argv[:3] == ['python', '-m', 'reach_bringup.echo']:
        return 'echo'
    if argv[:3] == ['python', '-m', 'reach_bringup.run']:
        if argv[3] == 'sim.launch.py' and len(argv) == 4:
            return 'run-loop'
        if argv[3] == 'collect_sim.launch.py':
            return 'collect-sim'
        return 'run-static'
    if argv[0] == 'reach' and 'data/sim_frames' in argv:
        return 'run-on-sim-frames'
    if argv[0] == 'reach':
        return 'reach-flags'
    if argv[0] == 'ros2':
        return 'ros2'
    if argv[:2] == ['docker', 'compose']:
        return 'docker'
    return 'uncovered'


# ids are numbers, not the commands: `colcon test ... -k test_ros_launch` (a walkthrough command
# that this test runs) must not select this test
@pytest.mark.parametrize('index', range(len(COMMANDS)), ids=lambda i: f'cmd{i:02d}')
def test_walkthrough_command(index, live):
    cmd = COMMANDS[index]
    kind = kind_of(cmd)
    argv = shlex.split(cmd)
    assert kind != 'uncovered', f'no test covers the walkthrough command {cmd!r}'
    check_paths(cmd, index)
    if kind == 'ci':
        ci = (ROOT / '.ci' / 'run').read_text() + (ROOT / 'scripts' / 'test.sh').read_text()
        setup = (ROOT / 'scripts' / 'setup_env.sh').read_text()
        if argv[0] == 'colcon':
            assert 'colcon build "${build_args[@]}"' in setup and \
                'build_args+=(--symlink-install)' in setup
        else:
            assert cmd in ci
    elif kind == 'env':
        r = run('. scripts/env.sh && command -v reach && python -c "import rclpy, reach_core"',
                ROOT, dict(os.environ))
        assert r.returncode == 0, r.stderr
    elif kind == 'main':
        r = live[cmd]
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        m = re.search(r'reaching results: (\d+)/2 targets reached', r.stdout)
        assert m, r.stdout[-3000:]
        assert 'controller control_dof' in r.stdout
    elif kind == 'run-loop':
        r = live[cmd]
        # it ran until Ctrl-C (SIGINT, after the echo commands), every node alive until then
        assert r.returncode == 130, r.stdout[-3000:]
        assert 'starting the nodes of' in r.stdout and 'exited' not in r.stdout, r.stdout
    elif kind == 'echo':
        r = live[cmd]
        assert r.returncode == 0, r.stdout + r.stderr
        if '--save' in argv:
            png = Path(live['work']) / argv[argv.index('--save') + 1]
            from PIL import Image
            assert Image.open(png).size == (640, 480)
        elif argv[3] == '/scene_config':
            assert r.stdout.count('source: ground_truth') == int(argv[argv.index('--count') + 1])
        else:
            assert 'state_name:' in r.stdout
    elif kind == 'collect-sim':
        r = live[cmd]
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out = Path(live['work']) / 'data' / 'sim_frames'
        meta = json.loads((out / 'dataset.json').read_text())
        assert meta['n'] == 4 and meta['target'] == 'virtual'
    elif kind == 'run-on-sim-frames':
        r = live[cmd]
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert '4 images' in r.stdout + r.stderr or 'sim_frames' in r.stdout + r.stderr
    elif kind == 'colcon-test':
        r = live[cmd]
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        if argv[1] == 'test-result':
            m = re.search(r'Summary: (\d+) tests, 0 errors, 0 failures', r.stdout)
            assert m and int(m.group(1)) > 0, r.stdout
    elif kind == 'run-static':
        check_run_args(argv[3:])
    elif kind == 'reach-flags':
        n_sub = 3 if argv[1] in ('train', 'eval', 'data') else 2
        check_flags(argv, n_sub)
    elif kind == 'ros2':
        check_ros2(argv)
    elif kind == 'docker':
        check_docker(argv)


def test_colcon_meta_gives_every_test_file_to_one_package():
    """reach_ros and reach_bringup name their files; reach_core takes tests/ less those (so a new
    test file runs under colcon test too)."""
    meta = json.loads((ROOT / 'colcon.meta').read_text())['names']
    named, ignored = [], []
    for pkg, args in meta.items():
        assert (ROOT / 'src' / pkg / 'package.xml').is_file(), pkg
        assert args['python-testing'] == 'pytest'
        for a in args['pytest-args']:
            if a.startswith('--ignore='):
                ignored.append(a.split('=', 1)[1])
            elif a.startswith('../../tests'):
                assert (ROOT / 'src' / pkg / a).resolve().exists(), a
                if a.endswith('.py'):
                    named.append(a)
    assert meta['reach_core']['pytest-args'].count('../../tests') == 1
    assert sorted(named) == sorted(ignored), 'reach_core must leave out exactly the named files'
    assert len(set(named)) == len(named)


# ------------------------------------------------------------------------ ros2 topic pub
def subscriptions() -> dict[str, list[tuple[str, object]]]:
    """Fully resolved topic -> [(message type name, QoS profile)] of every node subscription in
    the launch files (read from each node's create_subscription calls)."""
    import importlib
    from reach_ros import common
    pattern = re.compile(r"create_subscription\(\s*(\w+),\s*'([^']+)',\s*[\w.]+,\s*(\w+)\)")
    subs: dict[str, list] = {}
    for f in sorted((ROOT / 'launch').glob('*.launch.py')):
        for node in launch_spec.read(str(f)).nodes:
            mod = importlib.import_module(f'reach_ros.{node.executable}')
            remap = dict(node.remappings)
            ns = '/' + node.namespace.strip('/') if node.namespace.strip('/') else ''
            for mtype, name, qos in pattern.findall(Path(mod.__file__).read_text()):
                full = remap.get(name, name)
                full = full if full.startswith('/') else f'{ns}/{full}'
                subs.setdefault(full, []).append((mtype, getattr(common, qos)))
    return subs


def test_every_ros2_topic_pub_in_the_readme_reaches_its_subscribers():
    """A ``ros2 topic pub`` must match the QoS of the nodes that listen: a transient-local
    (latched) subscriber never connects to ros2 topic pub's default volatile publisher."""
    from rclpy.qos import DurabilityPolicy
    lines = [line for line in README.splitlines() if 'ros2 topic pub' in line]
    assert lines, 'the README shows how to publish a target'
    subs = subscriptions()
    for line in lines:
        argv = shlex.split(re.sub(r'\s+#\s.*$', '', line.strip().strip('`')))
        args = argv[argv.index('pub') + 1:]
        positional = [a for i, a in enumerate(args) if not a.startswith('-')
                      and not (i and args[i - 1].startswith('--qos'))]
        topic, mtype = positional[0], positional[1]
        assert topic in subs, f'no node subscribes to {topic}'
        assert {t for t, _ in subs[topic]} == {mtype.rsplit('/', 1)[-1]}, line
        latched = any(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for _, q in subs[topic])
        flag = args[args.index('--qos-durability') + 1] if '--qos-durability' in args else None
        if latched:
            assert flag == 'transient_local', f'{topic} is latched: {line} never connects'
