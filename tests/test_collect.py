"""Real-image collection (collect_images) in simulation, and its dataset writer.

The node runs as launch/collect_sim.launch.py starts it (reach_bringup.graph: executable,
parameter files, remappings), against fake_baxter + baxter_bridge + sim_camera over real rclpy
and DDS, in a ROS_DOMAIN_ID of this test run. Each node is its own Graph so that the camera can
be stopped (dropped frames) and the bridge restarted with a limit margin (an unreachable point).
The datasets it writes are loaded with reach_core.datasets.load_dataset, and every frame is
compared with the simulator's own rendering of the labelled joint angles.
"""
from __future__ import annotations

import builtins
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy')

from reach_bringup.graph import Graph  # noqa: E402
from reach_bringup.probe import pick_domain_id  # noqa: E402

from reach_core.datasets import collection, load_dataset, read_frame  # noqa: E402
from reach_core.renderer import render  # noqa: E402
from reach_core.scene import DEFAULT_CAMERA  # noqa: E402
from reach_ros import collect_images  # noqa: E402
from reach_ros.collect_images import CollectionStore, CollectError, DiskFullError, joint_grid  # noqa: E402,E501

LAUNCH = 'collect_sim.launch.py'
# short waits, but generous enough for a loaded 2-core machine (the camera stops publishing while
# its joint states are 0.5 s stale)
FAST = ['-p', 'settle_time_s:=0.2', '-p', 'frame_timeout_s:=1.5', '-p', 'frame_retries:=1',
        '-p', 'max_missed_frames:=2', '-p', 'move_timeout_s:=6.0']


def grid_args(lo, hi, n):
    return ['-p', f'grid_min:={list(map(float, lo))}', '-p', f'grid_max:={list(map(float, hi))}',
            '-p', f'grid_counts:={list(map(int, n))}']


def rows(out) -> list[dict]:
    path = os.path.join(out, 'labels.csv')
    if not os.path.exists(path):
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def meta(out) -> dict:
    with open(os.path.join(out, 'dataset.json')) as f:
        return json.load(f)


def check_frames_match_labels(out, n_expected):
    """Every recorded frame is the simulator's picture of its labelled joint angles."""
    ds = load_dataset(out, virtual_targets=2, verbose=False, max_bad_fraction=0.0)
    assert len(ds) == 2 * n_expected and not ds.skipped
    assert ds.images.shape[1:] == (84, 84)
    off = np.array([-100.0, -100.0])     # sim_camera draws no target
    for r in rows(out):
        q = np.array([float(r[k]) for k in ('left_s1', 'left_e1', 'left_w1')])
        frame = read_frame(Path(out) / r['image'], DEFAULT_CAMERA)
        assert np.array_equal(frame, render(off, q)), f"{r['image']} is not the arm at {q}"
    assert meta(out)['target'] == 'virtual'


class Rig:
    """fake_baxter, baxter_bridge and sim_camera of collect_sim.launch.py, each its own Graph."""

    def __init__(self, domain):
        self.domain = domain
        self.parts = {name: self.start(name) for name in ('fake_baxter', 'baxter_bridge',
                                                          'sim_camera')}

    def start(self, name, extra=None):
        return Graph(LAUNCH, domain_id=self.domain, only=[name],
                     extra_args={name: extra} if extra else None).start()

    def ensure(self):
        """Every part running (a test that failed half-way may have left one stopped)."""
        for name, g in list(self.parts.items()):
            if not all(g.alive().values()):
                g.stop()
                self.parts[name] = self.start(name)
        time.sleep(0.5)

    def restart(self, name, extra=None):
        self.parts[name].stop()
        self.parts[name] = self.start(name, extra)

    def collect(self, out, extra, timeout=60.0, while_running=None):
        g = Graph(LAUNCH, {'out_dir': str(out)}, domain_id=self.domain, only=['collect_images'],
                  extra_args={'collect_images': extra}).start()
        p = g.procs['collect_images']
        end = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < end:
            if while_running is not None:
                while_running()
            time.sleep(0.1)
        if p.poll() is None:
            g.stop()
            pytest.fail(f'collect_images did not finish in {timeout} s:\n{g.logs()}\n'
                        + '\n'.join(x.logs() for x in self.parts.values()))
        return p.returncode, g.log('collect_images')

    def stop(self):
        for g in self.parts.values():
            g.stop()


@pytest.fixture(scope='module')
def rig():
    r = Rig(pick_domain_id(11))
    time.sleep(1.0)
    yield r
    r.stop()


@pytest.fixture
def ready(rig):
    rig.ensure()
    return rig


def test_collects_a_grid_resumes_after_the_camera_drops_out(ready, tmp_path):
    rig = ready
    out = tmp_path / 'frames'
    grid = grid_args([-0.7, 0.9, 0.1], [-0.5, 1.2, 0.1], [3, 2, 1])     # 6 points, nearby
    state = {'stopped': False}

    def drop_camera_after_two():
        if not state['stopped'] and len(rows(out)) >= 2:
            rig.parts['sim_camera'].stop()          # the camera stops delivering frames
            state['stopped'] = True

    code, log = rig.collect(out, grid + FAST, while_running=drop_camera_after_two)
    assert state['stopped'], log
    assert code == collect_images.EXIT_ERROR, log
    assert 'camera: no frames at 2 grid points in a row' in log, log
    first = rows(out)
    assert 2 <= len(first) < 6, log
    skipped = meta(out)['collection']['skipped']
    assert len(skipped) >= 2 and all('no camera frame' in why for why in skipped.values())
    assert not [f for f in os.listdir(out / 'images') if f.endswith('.tmp')]
    check_frames_match_labels(out, len(first))             # what was recorded is intact
    mtimes = {r['image']: os.stat(out / r['image']).st_mtime_ns for r in first}

    # the camera is back: the same command resumes and visits only the missing points
    rig.parts['sim_camera'] = rig.start('sim_camera')
    code, log = rig.collect(out, grid + FAST)
    assert code == collect_images.EXIT_OK, log
    assert f'{len(first)} already recorded, {6 - len(first)} to go' in log, log
    assert '6 of 6 grid points recorded' in log, log
    final = rows(out)
    assert [r['image'] for r in final] == [f'images/{i:05d}.png' for i in range(6)]
    assert {r['image']: os.stat(out / r['image']).st_mtime_ns for r in first} == mtimes
    assert meta(out)['collection']['skipped'] == {}
    expect = joint_grid([-0.7, 0.9, 0.1], [-0.5, 1.2, 0.1], [3, 2, 1])
    got = np.array([[float(r[k]) for k in ('left_s1', 'left_e1', 'left_w1')] for r in final])
    assert np.max(np.abs(got - expect)) <= 0.01 + 1e-6        # settle_tolerance
    check_frames_match_labels(out, 6)

    # another grid in the same folder is refused, and nothing is touched
    code, log = rig.collect(out, grid_args([-0.7, 0.9, 0.1], [-0.5, 1.2, 0.1], [2, 2, 1]) + FAST)
    assert code == collect_images.EXIT_ERROR and 'another joint grid' in log, log
    assert rows(out) == final


def test_unreachable_points_are_skipped_and_reported(ready, tmp_path):
    rig = ready
    out = tmp_path / 'frames'
    # w1 = 1.9 is inside Baxter's limits but the bridge keeps 0.3 rad away from them: the arm
    # never gets there; e1 = 2.7 is beyond the joint limit (2.618) and is not even tried
    rig.restart('baxter_bridge', ['-p', 'limit_margin:=0.3'])
    try:
        code, log = rig.collect(out, grid_args([-0.5, 1.0, 0.3], [-0.5, 2.7, 1.9], [1, 2, 2])
                                + FAST)
    finally:
        rig.restart('baxter_bridge')
    assert code == collect_images.EXIT_SKIPPED, log
    skipped = meta(out)['collection']['skipped']
    assert {'1', '2', '3'} <= set(skipped), skipped
    assert 'not within 0.01 rad after 6 s' in skipped['1']
    assert 'left_e1 = 2.700 rad is outside its joint limits' in skipped['2']
    if '0' in skipped:      # point 0 is reachable: only a frame lost on a loaded machine
        assert 'no camera frame' in skipped['0'], skipped
    else:
        assert '3 grid points skipped' in log and '1 of 4 grid points recorded' in log, log
        check_frames_match_labels(out, 1)


def test_full_disk_stops_with_a_clear_error(ready, tmp_path):
    rig = ready
    out = tmp_path / 'frames'
    code, log = rig.collect(out, grid_args([-0.5, 1.0, 0.3], [-0.5, 1.0, 0.3], [1, 1, 1])
                            + FAST + ['-p', 'min_free_mb:=1e12'])
    assert code == collect_images.EXIT_ERROR, log
    assert 'disk full' in log and 'run the same command again to resume' in log, log
    assert rows(out) == [] and meta(out)['n'] == 0 and meta(out)['collection']['skipped'] == {}
    assert '#0' not in log, 'the arm must not be moved to a point that cannot be recorded'


def test_no_joint_states_is_a_clear_error(tmp_path):
    g = Graph(LAUNCH, {'out_dir': str(tmp_path / 'x')}, domain_id=pick_domain_id(12),
              only=['collect_images'],
              extra_args={'collect_images': ['-p', 'joint_state_timeout_s:=1.0']}).start()
    rc = g.procs['collect_images'].wait(30)
    assert rc == collect_images.EXIT_ERROR
    assert 'no joint states for 1 s' in g.log('collect_images')


# ------------------------------------------------------------------ the writer, without ROS
def _store(out, n=4):
    grid = joint_grid([-0.5, 1.0, 0.3], [-0.2, 1.0, 0.3], [n, 1, 1])
    cam = {'width': 640, 'height': 480}
    return CollectionStore(str(out), grid, cam, (0.5, 0.2)).open(), grid


def _frame(q):
    return render(np.array([-100.0, -100.0]), q)


@pytest.mark.parametrize('fail_on', ['image', 'labels'])
def test_a_write_failing_with_enospc_keeps_what_was_recorded(tmp_path, monkeypatch, fail_on):
    store, grid = _store(tmp_path / 'd')
    for i in range(2):
        store.record(i, _frame(grid[i]), grid[i])
    real_open = builtins.open

    def full_disk_open(path, mode='r', *a, **kw):      # the kernel's ENOSPC, from /dev/full
        if 'w' in mode and str(path).endswith('.tmp') and (
                (fail_on == 'image' and '/images/' in str(path)) or
                (fail_on == 'labels' and str(path).endswith('labels.csv.tmp'))):
            return real_open('/dev/full', mode, *a, **kw)
        return real_open(path, mode, *a, **kw)
    # the store (reach_core.datasets.collection) looks ``open`` up in its own module
    monkeypatch.setattr(collection, 'open', full_disk_open, raising=False)
    with pytest.raises(DiskFullError, match='disk full while writing .* 2 frames recorded'):
        store.record(2, _frame(grid[2]), grid[2])
    monkeypatch.undo()
    names = sorted(os.listdir(tmp_path / 'd')) + sorted(os.listdir(tmp_path / 'd' / 'images'))
    assert not [n for n in names if n.endswith('.tmp')], names
    assert [r['image'] for r in rows(tmp_path / 'd')] == ['images/00000.png', 'images/00001.png']
    assert len(load_dataset(tmp_path / 'd', verbose=False, max_bad_fraction=0.0)) == 2
    # resume: points 0 and 1 are done, 2 is recorded again
    again, _ = _store(tmp_path / 'd')
    assert [i for i in range(4) if again.done(i)] == [0, 1]
    again.record(2, _frame(grid[2]), grid[2])
    assert len(load_dataset(tmp_path / 'd', verbose=False, max_bad_fraction=0.0)) == 3


def test_store_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / 'dataset.json').write_text('{"format": "reach.dataset/1", "target": "in_image"}')
    with pytest.raises(CollectError, match='not written by collect_images'):
        _store(tmp_path)


def test_joint_grid_is_uniform_serpentine_and_complete():
    g = joint_grid([0, 0, 0], [1, 2, 3], [2, 3, 4])
    assert g.shape == (24, 3)
    assert {tuple(p) for p in g} == {(a, b, c) for a in (0, 1) for b in (0, 1, 2)
                                     for c in (0, 1, 2, 3)}
    # consecutive points differ in one joint by one grid spacing
    d = np.abs(np.diff(g, axis=0))
    assert np.all((d > 0).sum(axis=1) == 1) and np.allclose(d.max(axis=1), 1.0)
