"""rosbag2 (MCAP) bags -> reach datasets (reach_core.bags, ``reach data from-bag``), and the
collection node's recording into a bag.

The bags are written by the tests (reach_core.bags.BagWriter, on the rosbags library), read back
with an independent reader (the mcap library's ROS 2 decoder), and converted; frames are simulator
renderings of known joint angles, so every label can be checked against its picture.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from reach_core.bags import BagError, BagWriter, dataset_from_bag, dataset_to_bag, pair_nearest
from reach_core.cli import main as reach
from reach_core.datasets import load_dataset, read_frame, render_sim_dataset
from reach_core.kinematics import JOINT_NAMES
from reach_core.renderer import render, sample_scenes
from reach_core.scene import DEFAULT_CAMERA

IMG, JS, TGT = '/camera/image_raw', '/robot/joint_states', '/reach/target'
OFF = np.array([-100.0, -100.0])   # no target drawn
S = 1_000_000_000


def labels(out) -> np.ndarray:
    import csv
    with open(Path(out) / 'labels.csv', newline='') as f:
        return np.array([[float(r[c]) for c in ('target_x', 'target_y') + JOINT_NAMES]
                         for r in csv.DictReader(f)])


def meta(out) -> dict:
    return json.loads((Path(out) / 'dataset.json').read_text())


def stream_bag(path, q, frame_ns, joint_ns, *, names=JOINT_NAMES, recorded_ns=None):
    """Frames of the arm at q[i] stamped frame_ns[i]; joint states q[i] stamped joint_ns[i] and
    recorded at recorded_ns[i] (default: their stamps)."""
    recorded_ns = joint_ns if recorded_ns is None else recorded_ns
    with BagWriter(path) as w:
        for i, t in enumerate(joint_ns):
            w.write_joint_state(JS, t, ['left_s0', *names, 'left_w2'], [0.0, *q[i], 0.0],
                                t_ns=recorded_ns[i])
        for i, t in enumerate(frame_ns):
            w.write_image(IMG, t, render(OFF, q[i]))
    return path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_dataset_put_in_a_bag_comes_back_the_same(tmp_path, storage):
    ds = render_sim_dataset(tmp_path / 'ds', 5, seed=3, progress=False)
    bag = dataset_to_bag(ds, tmp_path / 'bag', storage=storage)
    files = list(bag.glob('*.mcap' if storage == 'mcap' else '*.db3'))
    assert (bag / 'metadata.yaml').is_file() and len(files) == 1
    # a folder, or an MCAP file on its own
    out = dataset_from_bag(bag if storage == 'sqlite3' else files[0], tmp_path / 'back',
                           image_topic=IMG, joint_topic=JS, target_topic=TGT)
    a = load_dataset(ds, verbose=False, max_bad_fraction=0)
    b = load_dataset(out, verbose=False, max_bad_fraction=0)
    assert np.array_equal(a.images, b.images)
    assert np.allclose(a.omega, b.omega, atol=1e-6)
    assert meta(out)['target'] == 'in_image' and meta(out)['bag']['skipped'] == {}


def test_the_bag_is_mcap_that_the_mcap_library_decodes(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    q = np.array([[-0.3, 1.2, 0.4]])
    bag = stream_bag(tmp_path / 'bag', q, [5 * S], [5 * S])
    with open(next(bag.glob('*.mcap')), 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        got = {ch.topic: msg for _s, ch, _m, msg in reader.iter_decoded_messages()}
    assert set(got) == {IMG, JS}
    img = got[IMG]
    assert (img.width, img.height, img.encoding) == (DEFAULT_CAMERA.width, DEFAULT_CAMERA.height,
                                                     'rgb8')
    frame = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
    assert np.array_equal(frame, render(OFF, q[0]))
    assert img.header.stamp.sec == 5 and list(got[JS].position)[1:4] == pytest.approx(q[0])


def test_pairing_picks_the_nearest_stamp_within_the_tolerance():
    idx, gap = pair_nearest([100, 149, 151, 400, 10], [0, 100, 200, 300], tolerance_ns=50)
    assert idx.tolist() == [1, 1, 2, -1, 0]
    assert gap.tolist() == [0, 49, 49, 100, 10]
    assert pair_nearest([1, 2], [], 10)[0].tolist() == [-1, -1]


@pytest.mark.parametrize('kind', ['bgr8', 'compressed'])
def test_each_frame_gets_the_joint_state_nearest_to_its_stamp(tmp_path, kind):
    target, q = sample_scenes(40, seed=5)
    # joint states every 10 ms; frames every 40 ms, 3 ms after a joint state (the nearest one);
    # frame 9 is 30 ms from any joint state and is skipped (tolerance 20 ms)
    joint_ns = [2 * S + k * 10_000_000 for k in range(40)]
    frames = list(range(0, 40, 4))
    frame_ns = [joint_ns[k] + 3_000_000 for k in frames]
    frame_ns[-1] = joint_ns[-1] + 30_000_000
    q_frames = q[frames]
    with BagWriter(tmp_path / 'bag') as w:
        for k, t in enumerate(joint_ns):
            w.write_joint_state(JS, t, JOINT_NAMES[::-1], q[k][::-1])   # names in another order
        for i, t in enumerate(frame_ns):
            frame = render(OFF, q_frames[i])
            if kind == 'compressed':
                w.write_compressed(IMG, t, frame, fmt='png')
            else:
                w.write_image(IMG, t, frame[..., ::-1], encoding='bgr8')
    code = reach(['data', 'from-bag', str(tmp_path / 'bag'), '--out', str(tmp_path / 'ds'),
                  '--image-topic', IMG, '--joint-topic', JS])
    assert code == 0
    got = labels(tmp_path / 'ds')
    assert len(got) == len(frames) - 1
    assert np.allclose(got[:, 2:], q_frames[:-1], atol=1e-6)
    assert np.allclose(got[:, :2], [0.5, 0.2])            # placeholder target, painted at load
    m = meta(tmp_path / 'ds')
    assert m['target'] == 'virtual' and list(m['bag']['skipped']) == [str(len(frames) - 1)]
    assert 'within 0.02 s (nearest 0.030 s away)' in m['bag']['skipped'][str(len(frames) - 1)]
    for k in range(len(got)):
        assert np.array_equal(read_frame(tmp_path / 'ds' / f'images/{k:06d}.png', DEFAULT_CAMERA),
                              render(OFF, q_frames[k]))


def test_a_target_topic_labels_frames_with_the_latest_target(tmp_path):
    q = np.array([[-0.5, 1.0, 0.2]] * 4)
    t = [S + k * S // 10 for k in range(4)]
    with BagWriter(tmp_path / 'bag') as w:
        w.write_target(TGT, t[0], (0.6, 0.3))
        w.write_target(TGT, t[2] - 1000, (0.4, -0.2))
        for k in range(4):
            w.write_joint_state(JS, t[k], JOINT_NAMES, q[k])
            w.write_image(IMG, t[k], render(OFF, q[k]))
    out = dataset_from_bag(tmp_path / 'bag', tmp_path / 'ds', image_topic=IMG, joint_topic=JS,
                           target_topic=TGT, target_mode='virtual')
    assert labels(out)[:, :2].tolist() == [[0.6, 0.3], [0.6, 0.3], [0.4, -0.2], [0.4, -0.2]]
    assert meta(out)['target'] == 'virtual'


def test_a_bag_without_the_joint_topic_is_refused_naming_it(tmp_path, capsys):
    q = np.array([[-0.3, 1.2, 0.4]])
    bag = stream_bag(tmp_path / 'bag', q, [S], [S])
    code = reach(['data', 'from-bag', str(bag), '--out', str(tmp_path / 'ds'),
                  '--joint-topic', '/baxter/joint_states'])
    err = capsys.readouterr().err
    assert code == 2
    assert 'no joint state topic /baxter/joint_states in the bag' in err
    assert f'{IMG} (sensor_msgs/msg/Image)' in err and f'{JS} (sensor_msgs/msg/JointState)' in err
    with pytest.raises(BagError, match='no image topic /cam in the bag'):
        dataset_from_bag(bag, tmp_path / 'ds', image_topic='/cam', joint_topic=JS)
    with pytest.raises(BagError, match='no target topic /t in the bag'):
        dataset_from_bag(bag, tmp_path / 'ds', image_topic=IMG, joint_topic=JS, target_topic='/t')
    with pytest.raises(BagError, match=f'topic {JS} holds sensor_msgs/msg/JointState, the image'):
        dataset_from_bag(bag, tmp_path / 'ds', image_topic=JS, joint_topic=JS)
    assert not (tmp_path / 'ds' / 'labels.csv').exists()


def test_unsynchronised_stamps_are_refused_naming_both_topics(tmp_path):
    _, q = sample_scenes(5, seed=1)
    frame_ns = [10 * S + k * S // 10 for k in range(5)]
    joint_ns = [t - 2 * S for t in frame_ns]        # the robot's clock 2 s behind the camera's
    bag = stream_bag(tmp_path / 'bag', q, frame_ns, joint_ns, recorded_ns=frame_ns)
    with pytest.raises(BagError) as err:
        dataset_from_bag(bag, tmp_path / 'ds', image_topic=IMG, joint_topic=JS)
    text = str(err.value)
    assert '5 of 5 frames on /camera/image_raw cannot be labelled' in text
    assert f'are the stamps of {IMG} and {JS} from synchronised clocks' in text
    assert 'nearest joint-state gap 1.600 s' in text
    assert not (tmp_path / 'ds' / 'labels.csv').exists()
    # recorded together, the bag's own times pair them
    out = dataset_from_bag(bag, tmp_path / 'ds2', image_topic=IMG, joint_topic=JS, bag_time=True)
    assert np.allclose(labels(out)[:, 2:], q, atol=1e-6)


def test_joint_states_without_the_plane_joints_are_refused_naming_the_topic(tmp_path):
    q = np.array([[-0.3, 1.2, 0.4]])
    bag = stream_bag(tmp_path / 'bag', q, [S], [S], names=('s1', 'e1', 'w1'))
    with pytest.raises(BagError, match=f'joint states on {JS} lack left_s1, left_e1, left_w1 '
                                       f'\\(they name left_s0, s1, e1, w1, left_w2\\)'):
        dataset_from_bag(bag, tmp_path / 'ds', image_topic=IMG, joint_topic=JS)
    out = dataset_from_bag(bag, tmp_path / 'ds', image_topic=IMG, joint_topic=JS,
                           joint_names=('s1', 'e1', 'w1'))
    assert np.allclose(labels(out)[0, 2:], q[0])


def test_grey_frames_and_missing_bags_are_refused(tmp_path):
    with BagWriter(tmp_path / 'bag') as w:
        w.write_joint_state(JS, S, JOINT_NAMES, [-0.3, 1.2, 0.4])
        w.write_image(IMG, S, np.zeros((4, 4, 1), np.uint8), encoding='mono8')
    with pytest.raises(BagError, match=f"frames on {IMG} are 'mono8'; need rgb8 or bgr8"):
        dataset_from_bag(tmp_path / 'bag', tmp_path / 'ds', image_topic=IMG, joint_topic=JS)
    with pytest.raises(BagError, match='bag not found'):
        dataset_from_bag(tmp_path / 'nope', tmp_path / 'ds', image_topic=IMG, joint_topic=JS)
    (tmp_path / 'junk').mkdir()
    (tmp_path / 'junk' / 'metadata.yaml').write_text('not: a bag\n')
    with pytest.raises(BagError, match='not a readable rosbag2'):
        dataset_from_bag(tmp_path / 'junk', tmp_path / 'ds', image_topic=IMG, joint_topic=JS)


def test_a_collection_run_records_what_it_receives_into_a_bag(tmp_path):
    """collect_images with bag_path: the bag holds the camera frames and joint states of the run,
    and the dataset built from it holds every frame the collection recorded, with its label."""
    pytest.importorskip('rclpy')
    from reach_bringup.probe import pick_domain_id
    from reach_core.bags import bag_topics
    from reach_ros.collect_images import EXIT_OK
    from test_collect import FAST, Rig, grid_args

    out, bag = tmp_path / 'frames', tmp_path / 'run'
    rig = Rig(pick_domain_id(23))
    try:
        time.sleep(1.0)
        code, log = rig.collect(out, grid_args([-0.7, 0.9, 0.1], [-0.6, 0.9, 0.1], [2, 1, 1])
                                + FAST + ['-p', f'bag_path:={bag}'])
    finally:
        rig.stop()
    assert code == EXIT_OK, log
    assert f'recording {IMG} and {JS} into {bag} (MCAP)' in log, log
    topics = bag_topics(bag)
    assert topics[IMG][0] == 'sensor_msgs/msg/Image' and topics[IMG][1] >= 2
    assert topics[JS][0] == 'sensor_msgs/msg/JointState' and topics[JS][1] > topics[IMG][1]
    # a loaded machine may delay joint states: a wide tolerance; the collector's frames are taken
    # with the arm at rest, so the nearest joint state is the one it was labelled with
    back = dataset_from_bag(bag, tmp_path / 'from_bag', image_topic=IMG, joint_topic=JS,
                            tolerance_s=0.1)
    bag_labels = labels(back)
    bag_frames = [read_frame(back / f'images/{k:06d}.png', DEFAULT_CAMERA)
                  for k in range(len(bag_labels))]
    collected = labels(out)
    assert len(collected) == 2 and len(bag_labels) >= 2
    for k, name in enumerate(sorted((out / 'images').iterdir())):
        frame = read_frame(name, DEFAULT_CAMERA)
        same = [i for i, f in enumerate(bag_frames) if np.array_equal(f, frame)]
        assert same, f'{name.name} is not in the bag'
        assert np.allclose(bag_labels[same[0], 2:], collected[k, 2:], atol=1e-3), \
            (bag_labels[same[0]], collected[k])


def test_joint_states_serialised_by_rclpy_are_read_despite_their_padding(tmp_path):
    """Fast-DDS pads the CDR of a JointState with empty velocity and effort; rosbags alone
    refuses it."""
    pytest.importorskip('rclpy')
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    q = [-0.4, 1.1, 0.3]
    msg = JointState(name=list(JOINT_NAMES), position=q)
    msg.header.stamp.sec = 3
    with BagWriter(tmp_path / 'bag') as w:
        w.write_raw(JS, 'sensor_msgs/msg/JointState', serialize_message(msg), 3 * S)
        w.write_image(IMG, 3 * S, render(OFF, np.array(q)))
    out = dataset_from_bag(tmp_path / 'bag', tmp_path / 'ds', image_topic=IMG, joint_topic=JS)
    assert np.allclose(labels(out)[0, 2:], q)
