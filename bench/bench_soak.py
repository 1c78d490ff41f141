"""Soak the sim graph: reaching trials for minutes, faults injected, memory and every command
watched.

    python bench/bench_soak.py [--minutes 10] [--faults] [--control-model PATH]

The graph of sim.launch.py runs (each node its own process, real DDS) with the shipped 3-DoF
controller (else the 1-DoF one); a probe runs reaching trials one after the other
(reach_bringup.trials) for ``--minutes``. With ``--faults`` (default on) each node in turn is
killed (kill -9) and restarted at evenly spaced times; a fault is survived when, once the node is
back, the graph commands again and trials go on. Every JointCommand is checked against Baxter's
limits and against the joint states received around it (more than two steps from all of them:
a jump).

Prints: RSS of each node process at start, middle and end (a restarted node's RSS is that of its
new process), rates of /scene_config, /reach/joint_delta and JointCommand over the run, trials
run and reached, faults injected and survived, commands outside the limits and jumps (must be 0).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

NODES = ('fake_baxter', 'sim_camera', 'perception', 'controller', 'baxter_bridge')


def rss_mb(pid: int) -> float:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


class Monitor:
    """Joint states and JointCommands recorded by a probe of their own, spun by its own thread:
    the trial probe, busy with five topics and service calls, takes queued messages late and
    topic by topic, which would blur which joint state a command followed."""

    def __init__(self, domain: int):
        import threading
        from baxter_core_msgs.msg import JointCommand
        from reach_bringup.probe import Probe
        from reach_bringup.trials import RECORD_QOS
        from sensor_msgs.msg import JointState
        self.probe = Probe(domain, 'bench_soak_monitor')
        self.states = self.probe.record(JointState, '/robot/joint_states', RECORD_QOS)
        self.commands = self.probe.record(JointCommand, '/robot/limb/left/joint_command',
                                          RECORD_QOS)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self.stop_flag.is_set():
            self.probe.executor.spin_once(timeout_sec=0.05)

    def close(self):
        self.stop_flag.set()
        self.thread.join(5)
        self.probe.close()


class Soak:
    """The running graph, its restarted nodes and the probe."""

    def __init__(self, model: str, domain: int):
        from reach_bringup.graph import Graph
        from reach_bringup.probe import Probe
        from reach_bringup.trials import watch
        from sensor_msgs.msg import JointState
        from reach_ros.common import COMMAND_QOS
        self.Graph, self.model, self.domain = Graph, model, domain
        self.graph = Graph('sim.launch.py', {'control_model': model}, domain_id=domain).start()
        self.owner = {n: self.graph for n in NODES}
        self.extra = []
        self.probe = Probe(domain, 'bench_soak')
        watch(self.probe)
        self.monitor = Monitor(domain)
        self.deltas = self.probe.record(JointState, '/reach/joint_delta', COMMAND_QOS)

    def pid(self, name: str) -> int:
        return self.owner[name].procs[name].pid

    def rss(self) -> dict[str, float]:
        return {n: rss_mb(self.pid(n)) for n in NODES}

    def kill_and_restart(self, name: str, timeout: float = 120.0) -> bool:
        """kill -9 ``name``; check the commands stop; restart it; True when commands resume."""
        cmds = self.monitor.commands
        os.kill(self.pid(name), signal.SIGKILL)
        self.probe.spin_for(1.0)
        n = len(cmds)
        self.probe.spin_for(1.0)
        quiet = len(cmds) == n
        g = self.Graph('sim.launch.py', {'control_model': self.model}, domain_id=self.domain,
                       only=[name]).start()
        self.owner[name] = g
        self.extra.append(g)
        return quiet and self.probe.spin_until(lambda: len(cmds) > n + 10, timeout)

    def stop(self):
        for g in self.extra:
            g.stop()
        self.graph.stop()
        self.monitor.close()
        self.probe.close()


#: receive times order joint states and commands only roughly (two topics, two DDS readers): a
#: command is compared with every joint state received this close to it
WINDOW_NS = 250_000_000


def check_commands(cmds, states) -> tuple[int, int]:
    """(commands outside Baxter's limits, commands more than two steps from every joint state
    received within WINDOW_NS of them: a jump)."""
    from reach_ros.common import JOINT_LIMITS, LEFT_ARM_JOINTS
    lo = np.array([JOINT_LIMITS[n][0] for n in LEFT_ARM_JOINTS])
    hi = np.array([JOINT_LIMITS[n][1] for n in LEFT_ARM_JOINTS])
    t_s = np.array([t for t, _ in states])
    q_s = np.array([[m.position[m.name.index(n)] for n in LEFT_ARM_JOINTS] for _, m in states])
    out = jumps = 0
    for t, m in cmds:
        c = np.array(m.command)
        out += int(np.any((c < lo - 1e-9) | (c > hi + 1e-9)))
        i, j = np.searchsorted(t_s, t - WINDOW_NS), np.searchsorted(t_s, t + WINDOW_NS)
        if j > i:
            jumps += int(np.min(np.max(np.abs(q_s[i:j] - c), axis=1)) > 0.08 + 1e-9)
    return out, jumps


def run_soak(soak: Soak, minutes: float, faults: bool, dof: int) -> dict:
    from reach_bringup.trials import run_trials
    p = soak.probe
    if not p.spin_until(lambda: len(p.commands) > 10, 120.0):
        raise RuntimeError('the sim graph did not come up:\n' + soak.graph.logs())
    t0, end = time.monotonic(), time.monotonic() + minutes * 60
    rss = {'start': soak.rss()}
    counts0 = (len(p.scene), len(soak.deltas), len(soak.monitor.commands))
    fault_at = list(np.linspace(t0, end, len(NODES) + 2)[1:-1]) if faults else []
    order, results, injected, survived, trial_errors, seed = list(NODES), [], 0, 0, 0, 0
    while time.monotonic() < end:
        if fault_at and time.monotonic() >= fault_at[0]:
            fault_at.pop(0)
            injected += 1
            survived += int(soak.kill_and_restart(order.pop(0)))
            continue
        if 'middle' not in rss and time.monotonic() >= t0 + (end - t0) / 2:
            rss['middle'] = soak.rss()
        try:
            seed += 1
            results += run_trials(p, 1, dof=dof, seed=seed, trial_timeout=45.0,
                                  startup_timeout=60.0)
        except (TimeoutError, RuntimeError):
            trial_errors += 1           # a trial cut by a fault: the next one starts afresh
    rss.setdefault('middle', soak.rss())
    rss['end'] = soak.rss()
    seconds = time.monotonic() - t0
    rates = [(len(x) - c) / seconds
             for x, c in zip((p.scene, soak.deltas, soak.monitor.commands), counts0)]
    out, jumps = check_commands(list(soak.monitor.commands), list(soak.monitor.states))
    return dict(rss=rss, rates=rates, seconds=seconds, trials=len(results),
                reached=sum(r.succeeded for r in results), trial_errors=trial_errors,
                injected=injected, survived=survived, out=out, jumps=jumps,
                commands=len(soak.monitor.commands))


def report(r: dict, model: str) -> None:
    print(f'soak: {r["seconds"] / 60:.1f} min of the sim graph, controller '
          f'{os.path.basename(model)}')
    print(f'{"node":14s} {"RSS start":>10s} {"middle":>8s} {"end":>8s}  (MB)')
    for n in NODES:
        print(f'{n:14s} {r["rss"]["start"][n]:10.1f} {r["rss"]["middle"][n]:8.1f} '
              f'{r["rss"]["end"][n]:8.1f}')
    print(f'rates: /scene_config {r["rates"][0]:.1f} Hz, /reach/joint_delta {r["rates"][1]:.1f} '
          f'Hz, JointCommand {r["rates"][2]:.1f} Hz')
    print(f'trials: {r["trials"]} run, {r["reached"]} reached; {r["trial_errors"]} cut by a '
          f'fault or timed out')
    print(f'faults injected (kill -9 + restart): {r["injected"]}, survived: {r["survived"]}')
    print(f'JointCommands: {r["commands"]}; outside the limits: {r["out"]}; more than two steps '
          f'from every joint state within 0.25 s (jumps): {r["jumps"]}')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=10.0)
    ap.add_argument('--faults', action=argparse.BooleanOptionalAction, default=True,
                    help='kill -9 and restart each node once during the soak')
    ap.add_argument('--control-model', default='')
    args = ap.parse_args(argv)
    import reach_core
    from reach_bringup.probe import pick_domain_id
    from reach_core.control import load_control
    models = os.path.join(os.path.dirname(reach_core.__file__), 'models')
    model = args.control_model or next(
        p for p in (os.path.join(models, 'control_dof3.pt'), os.path.join(models, 'control_dof1.pt'))
        if os.path.isfile(p))
    soak = Soak(model, pick_domain_id(53))
    try:
        r = run_soak(soak, args.minutes, args.faults, load_control(model).task.dof)
    except RuntimeError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    finally:
        soak.stop()
    report(r, model)
    return 1 if r['out'] or r['jumps'] or r['survived'] < r['injected'] else 0


if __name__ == '__main__':
    raise SystemExit(main())
