"""Read reach's launch files without the launch library, and turn their nodes into commands.

``ros2 launch`` is not installable from PyPI, so the tests and the benchmark start the graph
themselves: each node as its own process, with exactly the executable, parameter files,
parameter overrides and remappings that the launch file names. The launch files keep that in two
literal assignments, ``ARGUMENTS`` and ``NODES``, which :func:`read` evaluates with
:func:`ast.literal_eval` (the file is parsed, not run: its ``launch`` imports are never executed).
:func:`node_command` then builds the ``--ros-args`` command line that launch_ros would build.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    namespace: str
    params: list[str]
    arguments: dict[str, list[str]]
    remappings: list[list[str]]
    enclave: str = ''               # SROS2 enclave (--enclave), used with ROS_SECURITY_ENABLE
    condition: str = ''             # a boolean launch argument: the node runs only when 'true'

    @property
    def fqn(self) -> str:
        ns = '/' + self.namespace.strip('/') if self.namespace.strip('/') else ''
        return f'{ns}/{self.name}'


@dataclass
class LaunchSpec:
    path: str
    arguments: dict[str, tuple[str, str]]
    nodes: list[NodeSpec] = field(default_factory=list)

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f'{self.path} has no node named {name!r}')


def read(path: str) -> LaunchSpec:
    """ARGUMENTS and NODES of a reach launch file (ValueError if they are missing or not literal)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    found = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id in ('ARGUMENTS', 'NODES'):
            try:
                found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError as err:
                raise ValueError(f'{path}: {stmt.targets[0].id} is not a literal ({err})') from None
    missing = {'ARGUMENTS', 'NODES'} - set(found)
    if missing:
        raise ValueError(f'{path} does not define {", ".join(sorted(missing))}')
    args = {k: (str(v[0]), str(v[1])) for k, v in found['ARGUMENTS'].items()}
    nodes = [NodeSpec(package=n['package'], executable=n['executable'], name=n['name'],
                      namespace=n.get('namespace', ''), params=list(n.get('params', [])),
                      arguments=dict(n.get('arguments', {})),
                      remappings=[list(r) for r in n.get('remappings', [])],
                      enclave=n.get('enclave', ''), condition=n.get('condition', ''))
             for n in found['NODES']]
    for n in nodes:
        if n.condition and n.condition not in args:
            raise ValueError(f'{path}: node {n.name} runs on launch argument {n.condition!r}, '
                             f'which ARGUMENTS does not declare')
    return LaunchSpec(path=path, arguments=args, nodes=nodes)


def runs(spec: LaunchSpec, node: NodeSpec, overrides: dict[str, str] | None = None) -> bool:
    """Whether ``node`` runs with launch arguments ``overrides`` (its ``condition`` argument,
    if any, is 'true'; launch's IfCondition); ValueError for a value that is not a boolean."""
    if not node.condition:
        return True
    value = dict(overrides or {}).get(node.condition, spec.arguments[node.condition][0])
    try:
        return _ros_value(value, 'bool') == 'true'
    except ValueError as err:
        raise ValueError(f'launch argument {node.condition}:={value}: {err}') from None


def share_dir() -> str:
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory('reach_bringup')


def launch_file(name: str) -> str:
    """Installed path of a reach_bringup launch file, e.g. launch_file('sim.launch.py')."""
    return os.path.join(share_dir(), 'launch', name)


def executable(package: str, name: str) -> str:
    """Where ros2 run would find ``package``'s executable ``name`` (lib/<package>/<name>)."""
    from ament_index_python.packages import get_package_prefix
    return os.path.join(get_package_prefix(package), 'lib', package, name)


def _ros_value(value: str, kind: str) -> str:
    """A launch argument's text as a --ros-args -p value of the given type."""
    if kind == 'str':
        return "'" + value.replace("'", "''") + "'"
    if kind in ('float', 'int'):
        try:
            number = float(value) if kind == 'float' else int(value)
        except ValueError:
            raise ValueError(f'{value!r} is not a{"n integer" if kind == "int" else " number"}') \
                from None
        return repr(number) if kind == 'float' else str(number)
    if kind == 'bool':
        low = value.strip().lower()
        if low not in ('true', 'false'):
            raise ValueError(f'{value!r} is not a boolean')
        return low
    raise ValueError(f'unknown argument type {kind!r}')


def node_command(spec: LaunchSpec, node: NodeSpec, overrides: dict[str, str] | None = None,
                 config_dir: str | None = None) -> list[str]:
    """The command line launch_ros would run for ``node`` with launch arguments ``overrides``."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(spec.arguments)
    if unknown:
        raise KeyError(f'{spec.path} has no launch arguments {sorted(unknown)}')
    values = {k: overrides.get(k, default) for k, (default, _) in spec.arguments.items()}
    config_dir = config_dir or os.path.join(share_dir(), 'config')
    cmd = [executable(node.package, node.executable), '--ros-args', '-r', f'__node:={node.name}']
    if node.namespace.strip('/'):
        cmd += ['-r', f"__ns:=/{node.namespace.strip('/')}"]
    if node.enclave:
        cmd += ['--enclave', node.enclave]
    for f in node.params:
        cmd += ['--params-file', os.path.join(config_dir, f)]
    for param, (arg, kind) in node.arguments.items():
        try:
            cmd += ['-p', f'{param}:={_ros_value(values[arg], kind)}']
        except ValueError as err:
            raise ValueError(f'launch argument {arg}:={values[arg]}: {err}') from None
    if 'use_sim_time' in values:
        cmd += ['-p', f"use_sim_time:={_ros_value(values['use_sim_time'], 'bool')}"]
    for src, dst in node.remappings:
        cmd += ['-r', f'{src}:={dst}']
    return cmd
