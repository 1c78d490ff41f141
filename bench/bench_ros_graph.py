"""Figures of the ROS graph (sim.launch.py, each node its own process, real DDS).

    python bench/bench_ros_graph.py [--seconds 20] [--trials 20] [--control-model PATH]

Prints
* latency from a camera frame's stamp to the JointCommand it causes, p50 / p99 / max, at the
  camera's 30 Hz: measured at a separate subscriber, so it includes the last DDS hop
  (sim_camera -> perception -> controller -> baxter_bridge -> subscriber). Each
  /reach/joint_delta carries its image's stamp; the bridge answers each delta at once with a
  JointCommand, which is matched to the first JointCommand received after that delta;
* CPU use of each node process (% of one core, from /proc) over the same window;
* reaching success of the sim graph over --trials random targets.

The load of other processes on this machine shows in the figures: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def cpu_seconds(pid: int) -> float:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seconds', type=float, default=20.0, help='latency/CPU window (s)')
    ap.add_argument('--trials', type=int, default=20, help='reaching trials (0: none)')
    ap.add_argument('--control-model', default='', help='controller checkpoint (default: the '
                    'shipped control_dof3.pt, else control_dof1.pt)')
    ap.add_argument('--domain-id', type=int, default=None)
    args = ap.parse_args(argv)

    from reach_bringup.graph import Graph
    from reach_bringup.probe import Probe, pick_domain_id
    from reach_core.control import ControlPolicy

    model = _control_model(args.control_model)
    dof = ControlPolicy.load(model).task.dof
    domain = args.domain_id if args.domain_id is not None else pick_domain_id(7)
    graph = Graph('sim.launch.py', {'control_model': model}, domain_id=domain).start()
    probe = Probe(domain, 'bench_ros_graph')
    try:
        if not _measure_window(probe, graph, args.seconds, domain, model):
            return 1
        if args.trials > 0:
            _print_trials(probe, args.trials, dof)
        alive = graph.alive()
        if not all(alive.values()):
            print(f'  nodes that died: {[n for n, a in alive.items() if not a]}')
    finally:
        graph.stop()
        probe.close()
    return 0


def _control_model(path: str) -> str:
    """The controller checkpoint: ``path``, else the shipped control_dof3.pt, else control_dof1.pt."""
    import reach_core
    models = os.path.join(os.path.dirname(reach_core.__file__), 'models')
    return path or next(
        (p for p in (os.path.join(models, 'control_dof3.pt'), os.path.join(models, 'control_dof1.pt'))
         if os.path.isfile(p)))


def _measure_window(probe, graph, seconds: float, domain: int, model: str) -> bool:
    """Once joint deltas flow, record ``seconds`` of the graph and print the rates, the frame to
    JointCommand latency and the CPU per node; False (and the logs) when no deltas come."""
    from baxter_core_msgs.msg import JointCommand
    from reach_bringup.trials import watch
    from reach_interfaces.msg import SceneConfig
    from sensor_msgs.msg import JointState

    from reach_ros.common import COMMAND_QOS, stamp_ns

    deltas = probe.record(JointState, '/reach/joint_delta', COMMAND_QOS)
    cmds = probe.record(JointCommand, '/robot/limb/left/joint_command', COMMAND_QOS)
    scenes = probe.record(SceneConfig, '/scene_config', COMMAND_QOS)
    watch(probe)
    if not probe.spin_until(lambda: len(deltas) > 30, 60.0):
        print(graph.logs(), file=sys.stderr)
        print('error: the graph produced no joint deltas in 60 s', file=sys.stderr)
        return False
    pids = graph.pids()
    cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
    d0, c0, s0 = len(deltas), len(cmds), len(scenes)
    t0 = time.monotonic()
    probe.spin_for(seconds)
    wall = time.monotonic() - t0
    cpu = {n: (cpu_seconds(p) - cpu0[n]) / wall * 100 for n, p in pids.items()}
    d_recv = np.array([r for r, _ in deltas[d0:]])
    d_stamp = np.array([stamp_ns(m.header.stamp) for _, m in deltas[d0:]])
    c_recv = np.array([r for r, _ in cmds[c0:]])
    k = np.searchsorted(c_recv, d_recv)
    ok = k < len(c_recv)
    lat_ms = (c_recv[k[ok]] - d_stamp[ok]) * 1e-6
    scene_hz = (len(scenes) - s0) / wall
    print(f'ROS graph benchmark (sim.launch.py, domain {domain}, {os.cpu_count()} CPUs, '
          f'load average {os.getloadavg()[0]:.2f}); controller {os.path.basename(model)}')
    print(f'  window {wall:.1f} s: /scene_config {scene_hz:.1f} Hz, joint deltas '
          f'{len(d_recv) / wall:.1f} Hz, JointCommand {len(c_recv) / wall:.1f} Hz')
    if len(lat_ms):
        print(f'  camera stamp -> JointCommand received: p50 {np.percentile(lat_ms, 50):.2f} ms'
              f', p99 {np.percentile(lat_ms, 99):.2f} ms, max {lat_ms.max():.2f} ms '
              f'({len(lat_ms)} frames; target p99 <= 10 ms)')
    print('  CPU per node (% of one core): ' +
          ', '.join(f'{n} {c:.1f}' for n, c in cpu.items()))
    return True


def _print_trials(probe, trials: int, dof: int) -> None:
    """Reaching success of the running graph over ``trials`` random targets."""
    from reach_bringup.trials import run_trials

    t1 = time.monotonic()
    results = run_trials(probe, trials, dof=dof)
    ok_n = sum(r.succeeded for r in results)
    steps = [r.steps for r in results if r.succeeded]
    print(f'  reaching ({dof}-DoF targets): {ok_n}/{len(results)} reached '
          f'({100 * ok_n / len(results):.0f} %), median {np.median(steps) if steps else 0:.0f} '
          f'steps, {time.monotonic() - t1:.0f} s')


if __name__ == '__main__':
    raise SystemExit(main())
