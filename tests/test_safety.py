"""The bridge's safety rules and every node's parameter checks, without a running graph.

:class:`reach_ros.baxter_bridge.CommandShaper` and :class:`~reach_ros.baxter_bridge.StateCheck`
are ROS-free; the parameter checks are the nodes' own ``PARAMS``.
"""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

pytest.importorskip('rclpy')

from reach_ros.baxter_bridge import CommandShaper, StateCheck, limits  # noqa: E402
from reach_ros.common import JOINT_LIMITS, LEFT_ARM_JOINTS  # noqa: E402

NAMES = list(LEFT_ARM_JOINTS)
LO, HI = limits(NAMES)
STEP = 0.04
HOME = np.array([0.0, -0.55, 0.0, 1.2, 0.0, 0.4, 0.0])
S1 = NAMES.index('left_s1')
NODES = ['baxter_bridge', 'controller', 'perception', 'fake_baxter', 'sim_camera',
         'collect_images', 'webcam']


def shaper(margin=0.0):
    return CommandShaper(np.zeros(4), STEP, margin)


def test_a_command_never_passes_a_limit_when_the_arm_is_measured_past_it():
    """The issue's case: s1 measured at 1.5 rad (limit 1.047) was commanded 1.46."""
    measured = HOME.copy()
    measured[S1] = 1.5
    assert shaper().apply({'left_s1': 0.04}, measured) is None
    measured[S1] = JOINT_LIMITS['left_s1'][1] + 0.015     # just past it (sensor noise)
    cmd = shaper().apply({'left_s1': 0.04}, measured)
    assert cmd[S1] <= JOINT_LIMITS['left_s1'][1]
    assert abs(cmd[S1] - measured[S1]) <= STEP + 1e-12


def test_the_margin_is_applied_to_every_command():
    s = shaper(margin=0.1)
    measured = HOME.copy()
    measured[S1] = JOINT_LIMITS['left_s1'][1] - 0.12
    for _ in range(5):
        cmd = s.apply({'left_s1': 0.04}, measured)
    assert cmd[S1] == pytest.approx(JOINT_LIMITS['left_s1'][1] - 0.1)


def test_random_deltas_and_arms_give_commands_inside_the_limits_and_one_step():
    """Whatever the sequence of deltas and measured positions (in the limits, give or take the
    state tolerance), every command is inside the limits and one step of the measured arm."""
    rng = np.random.default_rng(0)
    s = shaper()
    sent = 0
    for _ in range(5000):
        measured = rng.uniform(LO - 0.02, HI + 0.02)
        if rng.random() < 0.7 and s.last is not None:     # often: the arm near the last command
            measured = np.clip(s.last + rng.normal(0, 0.03, 7), LO - 0.02, HI + 0.02)
        delta = {n: float(rng.choice([-STEP, 0.0, STEP])) for n in ('left_s1', 'left_e1', 'left_w1')}
        cmd = s.apply(delta, measured) if rng.random() < 0.5 else s.command(measured)
        if cmd is None:
            continue
        sent += 1
        assert np.all(cmd >= LO - 1e-12) and np.all(cmd <= HI + 1e-12)
        assert np.all(np.abs(cmd - measured) <= STEP + 1e-9)
    assert sent > 4000


def state(q, names=NAMES):
    return list(names), [float(v) for v in q]


@pytest.mark.parametrize('names, q, why', [
    (NAMES + ['left_s1'], list(HOME) + [0.3], 'duplicated joint names'),
    (NAMES[:6], HOME[:6], 'missing joints'),
    (NAMES, list(HOME[:6]), 'names but'),
    (NAMES, [float('nan')] + list(HOME[1:]), 'NaN'),
    (NAMES, [HOME[0], 1.5] + list(HOME[2:]), 'outside the joint limits'),
])
def test_the_bridge_refuses_an_implausible_joint_state(names, q, why):
    check = StateCheck(4.0, 0.02)
    q_out, reason = check.check(names, q, 1_000_000_000)
    assert q_out is None and why in reason


def test_a_jump_no_real_arm_makes_is_refused_and_an_old_state_does_not_move_the_reference():
    check = StateCheck(4.0, 0.02)
    t = 1_000_000_000
    assert check.check(*state(HOME), t)[1] is None
    spoofed = HOME.copy()
    spoofed[S1] += 0.3
    q, why = check.check(*state(spoofed), t + 10_000_000)       # +0.3 rad in 10 ms
    assert q is None and 'jump' in why
    assert check.check(*state(HOME), t + 5_000_000)[1] is not None   # before the spoofed one
    moved = HOME.copy()
    moved[S1] += 0.03
    assert check.check(*state(moved), t + 20_000_000)[1] is not None   # from the spoofed one
    assert check.check(*state(moved), t + 30_000_000)[1] is None       # consistent again
    q, why = check.check(*state(HOME), t)
    assert q is None and 'out of order' in why


def _numeric_params():
    for node in NODES:
        for p in importlib.import_module(f'reach_ros.{node}').PARAMS:
            d = p.default
            if isinstance(d, bool) or isinstance(d, str):
                continue
            yield pytest.param(p, id=f'{node}.{p.name}')


@pytest.mark.parametrize('param', list(_numeric_params()))
def test_every_numeric_parameter_refuses_values_that_are_not_finite_or_overflow_later(param):
    assert param.check is not None, f'{param.name} has no check'
    assert param.check(param.default) is None
    bad = [float('nan'), float('inf'), -float('inf'), 1e308, -1e308]
    if isinstance(param.default, (list, tuple)):
        for b in bad:
            value = list(param.default)
            value[0] = b if isinstance(value[0], float) else (int(1e18) if math.isfinite(b)
                                                              else b)
            assert param.check(value) is not None, (param.name, value)
    else:
        for b in bad:
            assert param.check(b) is not None, (param.name, b)
        if isinstance(param.default, int):
            assert param.check(10 ** 18) is not None, param.name


def test_every_bridge_parameter_is_read_only_at_run_time():
    from reach_ros.baxter_bridge import PARAMS
    assert all(p.read_only for p in PARAMS)
    names = {p.name for p in PARAMS}
    assert {'max_step', 'limit_margin', 'command_rate_hz', 'delta_timeout_s',
            'joint_state_timeout_s', 'max_delta_age_s', 'hold_positions'} <= names


def test_spoofed_states_in_a_row_are_refused_until_the_genuine_arm_is_back():
    check = StateCheck(4.0, 0.02)
    t, ms = 1_000_000_000, 1_000_000
    assert check.check(*state(HOME), t)[1] is None
    spoofed = HOME.copy()
    spoofed[S1] -= 0.3
    for k in range(1, 4):       # a second and third state like the first: still refused
        assert check.check(*state(spoofed), t + 10 * k * ms)[0] is None
    assert check.check(*state(HOME), t + 40 * ms)[0] is None     # jumps from the spoofed one
    assert check.check(*state(HOME), t + 50 * ms)[0] is not None
