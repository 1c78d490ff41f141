"""Baxter's ROS 1 messages as rosbridge delivers them (JSON), to and from the reach graph's.

A Baxter lab runs rosbridge_server beside the robot's ROS 1 master; the adapter node
(``reach_ros.baxter_rosbridge``) talks to it with roslibpy. This module is the whole mapping,
pure functions without ROS, so that it is tested against messages in the exact shape rosbridge
delivers (tests/fixtures/baxter_rosbridge/):

* Baxter's ``/robot/joint_states`` (sensor_msgs/JointState: head, both arms, torso in one message;
  the grippers' finger joints in messages of their own) -> the seven left-arm joints in
  baxter_interface's order, among them the three plane joints left_s1, left_e1, left_w1 of
  :mod:`reach_core.kinematics` (:func:`arm_state_from_rosbridge`);
* the safety bridge's ``baxter_core_msgs/JointCommand`` -> the JSON of the same message for
  ``/robot/limb/left/joint_command``: POSITION_MODE, the arm's joint names, any left-arm joint the
  command leaves out held where it is measured (:func:`joint_command_to_rosbridge`);
* ``/robot/state`` (baxter_core_msgs/AssemblyState): whether the robot is enabled and not stopped
  (:func:`robot_state_ok`); ``/robot/set_super_enable`` (std_msgs/Bool): :func:`enable_message`.

Bad messages raise :class:`BaxterMessageError` saying which field is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .kinematics import JOINT_NAMES

#: Baxter's left arm, in baxter_interface's order (the order of every command sent).
LEFT_ARM_JOINTS = ('left_s0', 'left_s1', 'left_e0', 'left_e1', 'left_w0', 'left_w1', 'left_w2')
#: The three pitch joints that move the hand in the vertical plane of the task.
PLANE_JOINTS = tuple(JOINT_NAMES)

#: Baxter's ROS 1 topics and their types, as rosbridge names them (package/Type).
JOINT_STATES = ('/robot/joint_states', 'sensor_msgs/JointState')
JOINT_COMMAND = ('/robot/limb/left/joint_command', 'baxter_core_msgs/JointCommand')
ROBOT_STATE = ('/robot/state', 'baxter_core_msgs/AssemblyState')
ENABLE = ('/robot/set_super_enable', 'std_msgs/Bool')

#: baxter_core_msgs/JointCommand modes
POSITION_MODE = 1


class BaxterMessageError(ValueError):
    """A message from or for Baxter that cannot be used (the text names the field)."""


@dataclass
class ArmState:
    """The left arm's joint state: names in :data:`LEFT_ARM_JOINTS` order, stamp in ns."""

    names: tuple[str, ...]
    position: list[float]
    velocity: list[float]
    effort: list[float]
    stamp_ns: int


def stamp_to_ns(stamp) -> int:
    """A rosbridge time (ROS 1 ``secs``/``nsecs`` or ROS 2 ``sec``/``nanosec``) in ns."""
    if not isinstance(stamp, dict):
        raise BaxterMessageError(f'header.stamp is not a time: {stamp!r}')
    for s, n in (('secs', 'nsecs'), ('sec', 'nanosec')):
        if s in stamp and n in stamp:
            secs, nsecs = stamp[s], stamp[n]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (secs, nsecs)) \
                    or secs < 0 or not 0 <= nsecs < 1_000_000_000:
                raise BaxterMessageError(f'header.stamp {stamp!r} is not a valid time')
            return secs * 1_000_000_000 + nsecs
    raise BaxterMessageError(f'header.stamp {stamp!r} has neither secs/nsecs nor sec/nanosec')


def ns_to_stamp(ns: int) -> dict:
    """ns -> a ROS 1 time as rosbridge writes it."""
    return {'secs': ns // 1_000_000_000, 'nsecs': ns % 1_000_000_000}


def _numbers(msg: dict, field: str, n: int, required: bool) -> list[float]:
    """``msg[field]`` as n finite floats (an empty list where it is optional and empty)."""
    values = msg.get(field, [])
    if values is None or (not required and len(values) == 0):
        return []
    if not isinstance(values, list) or len(values) != n:
        raise BaxterMessageError(f'{field} has {len(values) if isinstance(values, list) else values!r}'
                                 f' entries for {n} names')
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise BaxterMessageError(f'{field} holds a value that is not a number (null: NaN?)')
    out = [float(v) for v in values]
    if required and not all(math.isfinite(v) for v in out):
        raise BaxterMessageError(f'{field} holds NaN or infinite values')
    return out


def arm_state_from_rosbridge(msg: dict) -> ArmState | None:
    """The left arm's state from a ``/robot/joint_states`` message as rosbridge delivers it.

    None for a message about other joints only (the grippers publish their finger joints on the
    same topic); :class:`BaxterMessageError` for one that names some left-arm joints but not all
    seven, or is malformed."""
    if not isinstance(msg, dict) or not isinstance(msg.get('name'), list):
        raise BaxterMessageError('not a sensor_msgs/JointState (no name list)')
    names = msg['name']
    if not all(isinstance(n, str) for n in names):
        raise BaxterMessageError('name holds entries that are not strings')
    arm = [n for n in names if n in LEFT_ARM_JOINTS]
    if not arm:
        return None
    dup = sorted({n for n in arm if names.count(n) > 1})
    if dup:
        raise BaxterMessageError(f'duplicated joint names {dup}')
    missing = [n for n in LEFT_ARM_JOINTS if n not in names]
    if missing:
        raise BaxterMessageError(f'left-arm joints {missing} missing from the message')
    header = msg.get('header')
    if not isinstance(header, dict):
        raise BaxterMessageError('no header')
    stamp = stamp_to_ns(header.get('stamp'))
    position = _numbers(msg, 'position', len(names), required=True)
    velocity = _numbers(msg, 'velocity', len(names), required=False)
    effort = _numbers(msg, 'effort', len(names), required=False)
    index = [names.index(n) for n in LEFT_ARM_JOINTS]
    return ArmState(names=LEFT_ARM_JOINTS, position=[position[i] for i in index],
                    velocity=[velocity[i] for i in index] if velocity else [],
                    effort=[effort[i] for i in index] if effort else [], stamp_ns=stamp)


def joint_command_to_rosbridge(mode: int, names, command, measured: dict[str, float] | None
                               ) -> dict:
    """The JSON of baxter_core_msgs/JointCommand for ``/robot/limb/left/joint_command``.

    ``names``/``command`` is a POSITION_MODE command for left-arm joints (the safety bridge sends
    all seven); a left-arm joint it leaves out is held at its ``measured`` position. The result
    names all seven in :data:`LEFT_ARM_JOINTS` order."""
    names, command = list(names), list(command)
    if mode != POSITION_MODE:
        raise BaxterMessageError(f'mode {mode}: only POSITION_MODE ({POSITION_MODE}) is forwarded')
    if len(names) != len(command) or not names:
        raise BaxterMessageError(f'{len(names)} names but {len(command)} command values')
    bad = [n for n in names if n not in LEFT_ARM_JOINTS]
    if bad or len(set(names)) != len(names):
        raise BaxterMessageError(f'names {names}: distinct left-arm joints only')
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in command):
        raise BaxterMessageError('command holds NaN or infinite values')
    given = dict(zip(names, (float(v) for v in command)))
    out = []
    for n in LEFT_ARM_JOINTS:
        if n in given:
            out.append(given[n])
        elif measured is not None and n in measured and math.isfinite(measured[n]):
            out.append(float(measured[n]))
        else:
            raise BaxterMessageError(f'{n} is not commanded and its measured position is unknown')
    return {'mode': POSITION_MODE, 'command': out, 'names': list(LEFT_ARM_JOINTS)}


def robot_state_ok(msg: dict) -> tuple[bool, str]:
    """(whether Baxter may be commanded, why not) from a ``/robot/state`` AssemblyState."""
    if not isinstance(msg, dict) or not isinstance(msg.get('enabled'), bool):
        return False, f'/robot/state is not an AssemblyState: {msg!r}'
    if msg.get('stopped'):
        return False, (f"the robot is stopped (estop_button {msg.get('estop_button')}, "
                       f"estop_source {msg.get('estop_source')})")
    if msg.get('error'):
        return False, 'the robot reports an error'
    if not msg['enabled']:
        return False, 'the robot is not enabled (rosrun baxter_tools enable_robot.py -e)'
    return True, ''


def enable_message(enable: bool = True) -> dict:
    """std_msgs/Bool for ``/robot/set_super_enable`` (what baxter_interface's RobotEnable sends)."""
    return {'data': bool(enable)}
