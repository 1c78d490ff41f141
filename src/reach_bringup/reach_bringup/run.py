"""Run a reach launch file: ``ros2 launch`` where ROS 2 is installed, else the same nodes as
processes (:class:`reach_bringup.graph.Graph`: the executables, parameter files, overrides and
remappings that the launch file names).

    python -m reach_bringup.run sim.launch.py                    # until Ctrl-C
    python -m reach_bringup.run sim.launch.py --trials 20        # the main job: reaching trials
    python -m reach_bringup.run collect_sim.launch.py out_dir:=data/sim_frames --until collect_images

Launch arguments are given as ``name:=value``, as to ``ros2 launch``.

``--trials N`` runs N reaching trials through the running graph (``reach_bringup.trials``: a
random target on /reach/target, /controller/start_trial, /reach/status), prints each and a
summary, then stops the graph. The controller is the launch file's (``control_model``; empty: the
shipped ``control_dof3.pt``); while that file is not shipped the 1-DoF controller
``control_dof1.pt`` is passed as ``control_model`` instead (and drives 1-DoF targets), and this is
printed.

``--until NODE`` (without ros2 launch) ends the run when that node exits, with its exit code
(``collect_images`` exits when the collection is over; with ros2 launch, collect*.launch.py
shut themselves down then).

``--launcher auto|ros2|graph``: ``auto`` (default) uses ``ros2 launch`` when the ``ros2``
command and the launch library are installed, else the process graph. Node output goes to
the terminal (ros2 launch) or, prefixed with the node's name, from the graph's log files.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field


def _ros2_launch_available() -> bool:
    return shutil.which('ros2') is not None and importlib.util.find_spec('launch_ros') is not None


class _Tail:
    """Print new lines of the graph's log files, prefixed with the node name."""

    def __init__(self, graph, quiet: bool = False):
        self.graph, self.quiet, self.pos = graph, quiet, {}

    def poll(self) -> None:
        if self.quiet:
            return
        for name in self.graph.procs:
            path = os.path.join(self.graph.log_dir, f'{name}.log')
            try:
                with open(path, 'rb') as f:
                    f.seek(self.pos.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b'\n') + 1
            if end:
                self.pos[name] = self.pos.get(name, 0) + end
                for line in data[:end].decode('utf-8', 'replace').splitlines():
                    print(f'[{name}] {line}', flush=True)


def _shipped(name: str) -> str:
    import reach_core
    return os.path.join(os.path.dirname(reach_core.__file__), 'models', name)


def _pick_controller(overrides: dict, spec) -> tuple[str, int, str | None]:
    """(control model path, its DoF, a note) for --trials.  The model may be a control checkpoint
    or a combined end-to-end one (the controller node runs its control half)."""
    from reach_core.control import load_control
    model = overrides.get('control_model', spec.arguments.get('control_model', ('', ''))[0])
    note = None
    if not model:
        model = _shipped('control_dof3.pt')
        if not os.path.isfile(model):
            fallback = _shipped('control_dof1.pt')
            note = (f'{model} is not shipped yet: using the 1-DoF controller {fallback} on 1-DoF '
                    f'targets instead')
            model = fallback
            overrides['control_model'] = model
    return model, load_control(model).task.dof, note


def _print_trials(results, model: str, dof: int, seconds: float) -> None:
    import numpy as np
    print(f'{"trial":>5} {"result":>9} {"steps":>5} {"distance":>9} {"time":>6}  target (m)')
    for r in results:
        print(f'{r.trial:5d} {"reached" if r.succeeded else "FAILED":>9} {r.steps:5d} '
              f'{r.distance_m * 100:7.1f}cm {r.seconds:5.1f}s  '
              f'({r.target[0]:+.3f}, {r.target[1]:+.3f})')
    ok = [r for r in results if r.succeeded]
    steps = [r.steps for r in ok]
    print(f'reaching results: {len(ok)}/{len(results)} targets reached '
          f'({100.0 * len(ok) / max(1, len(results)):.0f} %), median '
          f'{np.median(steps) if steps else float("nan"):.0f} steps, {dof}-DoF targets, '
          f'controller {os.path.basename(model)}, {seconds:.0f} s', flush=True)


class _Refusal(Exception):
    """A run that cannot start: main prints ``error: <message>`` and exits with 2."""


@dataclass
class _Plan:
    """What main starts: the launch file, its spec, the launch arguments and the run's settings."""

    path: str
    spec: object
    overrides: dict
    domain: int
    model: str | None = None
    dof: int | None = None
    extra: dict = field(default_factory=dict)
    use_ros2: bool = False


def _parser() -> argparse.ArgumentParser:
    """The command line of ``python -m reach_bringup.run``."""
    ap = argparse.ArgumentParser(prog='python -m reach_bringup.run',
                                 description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('launch', help='launch file of reach_bringup (e.g. sim.launch.py) or a path')
    ap.add_argument('args', nargs='*', metavar='name:=value', help='launch arguments')
    ap.add_argument('--trials', type=int, default=0, help='run N reaching trials, print the '
                    'results, stop')
    ap.add_argument('--seed', type=int, default=2017, help='seed of the trial targets')
    ap.add_argument('--trial-timeout', type=float, default=45.0, help='seconds per trial')
    ap.add_argument('--startup-timeout', type=float, default=300.0,
                    help='seconds to wait for the graph (joint states, scene configurations, '
                         '/controller/start_trial) before the first trial: a controller loading '
                         'on a busy machine takes a while')
    ap.add_argument('--until', metavar='NODE', help='stop when this node exits (its exit code)')
    ap.add_argument('--param', action='append', default=[], metavar='NODE.name:=value',
                    help='process graph only: one more -p for a node (e.g. '
                         'collect_images.grid_counts:=[2,2,2]); with ros2 launch, edit the '
                         'node\'s config/*.yaml instead')
    ap.add_argument('--launcher', choices=('auto', 'ros2', 'graph'), default='auto')
    ap.add_argument('--domain-id', type=int, default=None,
                    help='ROS_DOMAIN_ID (default: the environment\'s, else 0)')
    ap.add_argument('--quiet', action='store_true', help='do not print node output')
    ap.add_argument('--timeout', type=float, default=0.0, help='stop after this many seconds '
                    '(0: no limit)')
    return ap


def _read_launch(ap: argparse.ArgumentParser, args) -> _Plan:
    """The launch file, its spec and the ``name:=value`` arguments, checked against each other."""
    from . import launch_spec
    overrides = {}
    for a in args.args:
        if ':=' not in a:
            ap.error(f'launch arguments are name:=value, got {a!r}')
        k, v = a.split(':=', 1)
        overrides[k] = v
    path = args.launch if os.sep in args.launch else launch_spec.launch_file(args.launch)
    if not os.path.isfile(path):
        raise _Refusal(f'no launch file {path}')
    spec = launch_spec.read(path)
    unknown = sorted(set(overrides) - set(spec.arguments))
    if unknown:
        raise _Refusal(f'{os.path.basename(path)} has no launch argument(s) {unknown}; it has '
                       f'{sorted(spec.arguments)}')
    domain = args.domain_id if args.domain_id is not None else \
        int(os.environ.get('ROS_DOMAIN_ID', '0') or 0)
    return _Plan(path, spec, overrides, domain)


def _choose_controller(args, plan: _Plan) -> None:
    """plan.model and plan.dof where the launch file has a controller (a note when it falls
    back); --trials without one is refused."""
    has_controller = any(n.executable == 'controller' for n in plan.spec.nodes)
    if args.trials > 0 and not has_controller:
        raise _Refusal(f'--trials needs a controller; {os.path.basename(plan.path)} has none')
    if has_controller:
        from reach_core.control import CheckpointError
        try:
            plan.model, plan.dof, note = _pick_controller(plan.overrides, plan.spec)
        except CheckpointError as err:
            raise _Refusal(f'control_model: {err}') from None
        if note:
            print(f'[run] note: {note}', flush=True)


def _choose_launcher(ap: argparse.ArgumentParser, args, plan: _Plan) -> None:
    """plan.extra (the --param options, per node) and plan.use_ros2, checked together."""
    for p in args.param:
        node_name, _, rest = p.partition('.')
        if ':=' not in rest or node_name not in {n.name for n in plan.spec.nodes}:
            ap.error(f'--param is NODE.name:=value with a node of {os.path.basename(plan.path)}, '
                     f'got {p!r}')
        plan.extra.setdefault(node_name, []).extend(['-p', rest])
    plan.use_ros2 = args.launcher == 'ros2' or (args.launcher == 'auto'
                                                 and _ros2_launch_available())
    if plan.use_ros2 and plan.extra:
        raise _Refusal('--param needs the process graph (--launcher graph); with ros2 launch, '
                       'edit the config/*.yaml files')
    if args.launcher == 'ros2' and not _ros2_launch_available():
        raise _Refusal('ros2 launch is not installed here (use --launcher graph)')


def _start_ros2_launch(args, plan: _Plan) -> subprocess.Popen:
    """``ros2 launch`` of the launch file with the launch arguments, in its own session."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(plan.domain))
    cmd = ['ros2', 'launch', plan.path] + [f'{k}:={v}' for k, v in plan.overrides.items()]
    print('[run] ' + ' '.join(cmd), flush=True)
    return subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL if args.quiet else None,
                            stderr=subprocess.STDOUT if args.quiet else None)


def _start_graph(args, plan: _Plan):
    """The launch file's nodes as processes (a :class:`reach_bringup.graph.Graph`), started."""
    from .graph import Graph
    graph = Graph(plan.path, plan.overrides, domain_id=plan.domain, extra_args=plan.extra)
    name = os.path.basename(plan.path)
    if args.until and args.until not in {n.name for n in plan.spec.nodes}:
        raise _Refusal(f'{name} has no node {args.until!r}')
    try:
        graph.start()
    except (ValueError, OSError) as err:   # no node is left running (Graph.start)
        raise _Refusal(f'{name}: {err}') from None
    print(f'[run] ros2 launch is not installed: starting the nodes of {plan.path} as processes '
          f'(ROS_DOMAIN_ID={plan.domain}; logs in {graph.log_dir}):', flush=True)
    for cmd in graph.commands.values():
        print(f'[run]   {" ".join(cmd)}', flush=True)
    return graph


def _each_trial(args, plan: _Plan, probe, tail) -> list:
    """Run the trials one by one (so node output and results interleave readably), printing each."""
    import numpy as np
    from .trials import run_trials
    print(f'[run] {args.trials} reaching trials with {os.path.basename(plan.model)} '
          f'({plan.dof}-DoF targets)', flush=True)
    results = []
    rng_seeds = np.random.SeedSequence(args.seed).generate_state(args.trials)
    for k in range(args.trials):
        results += run_trials(probe, 1, dof=plan.dof, seed=int(rng_seeds[k]),
                              trial_timeout=args.trial_timeout,
                              startup_timeout=args.startup_timeout if k == 0 else 10.0,
                              tool=plan.overrides.get('tool'))
        if tail:
            tail.poll()
        r = results[-1]
        print(f'[run] trial {r.trial}: {"reached" if r.succeeded else "FAILED"} in '
              f'{r.steps} steps ({r.distance_m * 100:.1f} cm, {r.seconds:.1f} s)', flush=True)
    return results


def _run_trials(args, plan: _Plan, graph, tail, t0: float) -> int:
    """--trials: the trials through the running graph and their summary; 1 when they fail."""
    from .probe import Probe
    probe = Probe(plan.domain, 'reach_run')
    try:
        results = _each_trial(args, plan, probe, tail)
    except (TimeoutError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        if graph is not None:
            print(graph.logs()[-6000:], file=sys.stderr)
        return 1
    finally:
        probe.close()
    _print_trials(results, plan.model, plan.dof, time.monotonic() - t0)
    return 0


def _graph_ended(args, graph, tail) -> int | None:
    """The graph's exit code once it is over (--until's node exited, or any node died), else None."""
    tail.poll()
    if args.until:
        rc = graph.procs[args.until].poll()
        if rc is not None:
            return rc
    dead = [n for n, alive in graph.alive().items() if not alive]
    if dead and not args.until:
        print(f'error: node(s) {dead} exited', file=sys.stderr)
        return 1
    return None


def _watch(args, launch_proc, graph, tail, t0: float) -> int:
    """Without --trials: wait for the end (--timeout, ros2 launch's exit, the graph's end)."""
    while True:
        if args.timeout and time.monotonic() - t0 > args.timeout:
            print(f'[run] --timeout {args.timeout:g} s reached', flush=True)
            return 0
        if launch_proc is not None:
            if launch_proc.poll() is not None:
                return launch_proc.returncode
        else:
            code = _graph_ended(args, graph, tail)
            if code is not None:
                return code
        time.sleep(0.2)


def _stop(launch_proc, graph, tail) -> None:
    """SIGINT to ros2 launch (SIGKILL to its session after 15 s), or stop the graph."""
    if launch_proc is not None and launch_proc.poll() is None:
        launch_proc.send_signal(signal.SIGINT)
        try:
            launch_proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(launch_proc.pid, signal.SIGKILL)
            launch_proc.wait()
    if graph is not None:
        graph.stop()
        if tail:
            tail.poll()


def _supervise(args, plan: _Plan, launch_proc, graph) -> int:
    """Run the trials or wait for the end, then stop everything; the exit code (130: Ctrl-C)."""
    tail = _Tail(graph, args.quiet) if graph is not None else None
    code = 0
    t0 = time.monotonic()
    interrupted = False
    try:
        if args.trials > 0:
            code = _run_trials(args, plan, graph, tail, t0)
        else:
            code = _watch(args, launch_proc, graph, tail, t0)
    except KeyboardInterrupt:
        interrupted = True
        code = 130
    finally:
        _stop(launch_proc, graph, tail)
    if interrupted:
        print('[run] interrupted', file=sys.stderr)
    return code


def main(argv=None) -> int:
    """Start the launch file (ros2 launch or the process graph), run it, stop it; the exit code."""
    # Ctrl-C / SIGINT stops the graph even when started as a background job of a script, where
    # SIGINT arrives ignored (and the nodes would inherit that): as ros2 launch, handle it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = _parser()
    args = ap.parse_args(argv)
    launch_proc = graph = None
    try:
        plan = _read_launch(ap, args)
        _choose_controller(args, plan)
        _choose_launcher(ap, args, plan)
        if plan.use_ros2:
            launch_proc = _start_ros2_launch(args, plan)
        else:
            graph = _start_graph(args, plan)
    except _Refusal as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return _supervise(args, plan, launch_proc, graph)


if __name__ == '__main__':
    raise SystemExit(main())
