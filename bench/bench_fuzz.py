"""Fuzz the Baxter bridge at scale (reach_bringup.fuzz), over real rclpy and DDS.

    python bench/bench_fuzz.py [--per-kind 2000] [--rounds 2] [--fault-hold 0]

The bridge runs as its own process with the parameters of sim.launch.py; a probe plays the arm
(standing with s1 next to its upper limit, joint states at 100 Hz), the controller (one step
towards the limit at 20 Hz) and the fuzzer: ``--per-kind`` malformed joint states and deltas of
each kind per round, shuffled, in bursts of ``--burst`` among the genuine messages, on the same
publishers. The bridge holds for ``fault_hold_s`` (``--fault-hold``, default the configured 1 s)
after an implausible state; between bursts there is genuine traffic for that long plus 0.3 s, so
it also commands during the fuzz and those commands are checked. Between rounds the bridge is
killed (kill -9)
and restarted. Prints, summed over the rounds: inputs tried by kind, JointCommands, commands
outside the limits (must be 0), commands more than one step from the measured position (must
be 0), crashes (0) and faults survived (restarts after which the bridge commanded again).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--per-kind', type=int, default=2000, help='malformed messages per kind and '
                    'round')
    ap.add_argument('--rounds', type=int, default=2, help='fuzz rounds (kill -9 and restart of '
                    'the bridge between them)')
    ap.add_argument('--fault-hold', type=float, default=1.0, help='the bridge\'s fault_hold_s')
    ap.add_argument('--burst', type=int, default=300, help='malformed messages per burst; '
                    'genuine traffic only for fault_hold_s + 0.3 s between bursts')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args(argv)

    from reach_bringup import fuzz
    from reach_bringup.graph import Graph
    from reach_bringup.probe import Probe, pick_domain_id

    domain = pick_domain_id(51)
    probe = Probe(domain, 'bench_fuzz')
    extra = {'baxter_bridge': ['-p', f'fault_hold_s:={args.fault_hold}']}
    total = fuzz.FuzzReport()
    crashes = survived = 0
    graph = None
    t0 = time.monotonic()
    try:
        for r in range(args.rounds):
            graph = Graph('sim.launch.py', domain_id=domain, only=['baxter_bridge'],
                          extra_args=extra).start()
            if not fuzz.warm_up(probe, 30.0):
                print(f'error: the bridge did not command:\n{graph.logs()}', file=sys.stderr)
                return 1
            if r:
                survived += 1          # commanding again after the kill -9 of the round before
            rep = fuzz.run(probe, lambda: graph.alive()['baxter_bridge'],
                           per_kind=args.per_kind, seed=args.seed + r, burst=args.burst,
                           gap_s=args.fault_hold + 0.3)
            _add(total, rep)
            crashes += int(rep.crashed) + int('Traceback' in graph.log('baxter_bridge'))
            os.kill(graph.procs['baxter_bridge'].pid, signal.SIGKILL)
            graph.stop()
            graph = None
    finally:
        if hasattr(probe, 'fuzz_harness'):
            probe.fuzz_harness.on = False
        if graph is not None:
            graph.stop()
        probe.close()
    total.crashed = bool(crashes)
    total.seconds = time.monotonic() - t0
    print(f'bridge fuzz: {args.rounds} round(s) x {args.per_kind} per kind, fault_hold_s '
          f'{args.fault_hold:g}')
    for line in total.lines():
        if not line.startswith('crashes'):
            print(line)
    print(f'crashes: {crashes}')
    print(f'faults survived (kill -9 of the bridge, restarted, commanding again): {survived}')
    bad = total.out_of_limits + total.far_from_measured + crashes
    return 1 if bad else 0


def _add(total, rep) -> None:
    """Add one round's :class:`reach_bringup.fuzz.FuzzReport` counts to ``total``."""
    for k, v in rep.tried.items():
        total.tried[k] = total.tried.get(k, 0) + v
    total.commands += rep.commands
    total.commands_after += rep.commands_after
    total.out_of_limits += rep.out_of_limits
    total.far_from_measured += rep.far_from_measured


if __name__ == '__main__':
    raise SystemExit(main())
