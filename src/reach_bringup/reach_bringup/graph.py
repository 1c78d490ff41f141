"""Start a reach launch file's nodes as separate processes (what ros2 launch does), for tests and
benchmarks where the launch library is not installed.

    with Graph('sim.launch.py', {'control_model': path}, domain_id=57) as g:
        ...            # talk to it with an rclpy node in the same ROS_DOMAIN_ID
        g.log('controller')

Every node runs the installed executable with the command line of
:func:`reach_bringup.launch_spec.node_command`; stdout and stderr of each go to a log file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time

from . import launch_spec


class Graph:
    def __init__(self, launch: str, overrides: dict[str, str] | None = None,
                 domain_id: int | None = None, only: list[str] | None = None,
                 extra_args: dict[str, list[str]] | None = None, log_dir: str | None = None):
        path = launch if os.path.isabs(launch) else launch_spec.launch_file(launch)
        self.spec = launch_spec.read(path)
        self.overrides = overrides or {}
        self.env = dict(os.environ)
        if domain_id is not None:
            self.env['ROS_DOMAIN_ID'] = str(domain_id)
        self.env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.env['PYTHONUNBUFFERED'] = '1'
        self.env['RCUTILS_COLORIZED_OUTPUT'] = '0'
        self.only = only
        self.extra_args = extra_args or {}
        self.log_dir = log_dir or tempfile.mkdtemp(prefix='reach_graph_')
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}

    def start(self) -> Graph:
        """Start every node; every command line is built first, so a bad launch argument
        (ValueError) starts no process at all; a node that cannot start stops the others."""
        for node in self.spec.nodes:
            if self.only is not None and node.name not in self.only:
                continue
            if self.only is None and not launch_spec.runs(self.spec, node, self.overrides):
                continue        # an optional node whose launch argument is off
            cmd = launch_spec.node_command(self.spec, node, self.overrides)
            self.commands[node.name] = cmd + self.extra_args.get(node.name, [])
        try:
            for name, cmd in self.commands.items():
                with open(os.path.join(self.log_dir, f'{name}.log'), 'wb') as out:
                    self.procs[name] = subprocess.Popen(cmd, stdout=out, env=self.env,
                                                        stderr=subprocess.STDOUT,
                                                        start_new_session=True)
        except OSError:
            self.stop()
            raise
        return self

    def log(self, name: str) -> str:
        try:
            with open(os.path.join(self.log_dir, f'{name}.log'), encoding='utf-8',
                      errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def logs(self) -> str:
        return '\n'.join(f'----- {n} -----\n{self.log(n)}' for n in self.procs)

    def alive(self) -> dict[str, bool]:
        return {n: p.poll() is None for n, p in self.procs.items()}

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items()}

    def stop(self, timeout: float = 5.0) -> dict[str, int | None]:
        """SIGINT every node (as ros2 launch does), then SIGKILL stragglers; return exit codes."""
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {n: p.returncode for n, p in self.procs.items()}

    def __enter__(self) -> Graph:
        return self.start()

    def __exit__(self, *exc):
        self.stop()
