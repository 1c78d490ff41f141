"""reach datasets <-> LeRobotDataset folders (reach_core.lerobot_format, ``reach data
export-lerobot`` / ``import-lerobot``).

Exports are read back with independent readers (Hugging Face ``datasets`` for the data file and
its Image feature, pandas for the tasks table); imports are tested on folders the tests write
by hand in LeRobot's v2.1 and v3.0 layouts (a robot with more joints, a video feature).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reach_core.cli import main as reach
from reach_core.datasets import load_dataset, render_sim_dataset, save_net_dataset, write_dataset
from reach_core.kinematics import JOINT_NAMES
from reach_core.lerobot_format import LeRobotError, export_lerobot, import_lerobot
from reach_core.renderer import render, sample_scenes

OFF = np.array([-100.0, -100.0])


def labels(out) -> np.ndarray:
    with open(Path(out) / 'labels.csv', newline='') as f:
        return np.array([[float(r[c]) for c in ('target_x', 'target_y') + JOINT_NAMES]
                         for r in csv.DictReader(f)])


def meta(out) -> dict:
    return json.loads((Path(out) / 'dataset.json').read_text())


def test_a_dataset_exported_and_imported_back_is_the_same(tmp_path):
    src = render_sim_dataset(tmp_path / 'ds', 6, seed=2, progress=False)
    assert reach(['data', 'export-lerobot', str(src), '--out', str(tmp_path / 'lr')]) == 0
    assert reach(['data', 'import-lerobot', str(tmp_path / 'lr'),
                  '--out', str(tmp_path / 'back')]) == 0
    a = load_dataset(src, verbose=False, max_bad_fraction=0)
    b = load_dataset(tmp_path / 'back', verbose=False, max_bad_fraction=0)
    assert np.array_equal(a.images, b.images)
    assert np.allclose(a.omega, b.omega, atol=1e-6)
    assert meta(tmp_path / 'back')['target'] == 'in_image'


def test_a_virtual_target_dataset_of_another_camera_keeps_its_mode_and_camera(tmp_path):
    target, q = sample_scenes(3, seed=4)
    cam = {'width': 320, 'height': 240, 'px_per_m': 100.0, 'origin_px': [160.0, 120.0],
           'roi': [55, 15, 210, 210]}
    frames = [np.full((240, 320, 3), 40 * k, np.uint8) for k in range(3)]
    src = write_dataset(tmp_path / 'ds', lambda t, qq, s: frames[s:s + len(qq)], target, q,
                        target_mode='virtual', meta={'camera': cam}, image_format='jpg',
                        progress=False)
    export_lerobot(src, tmp_path / 'lr')
    info = json.loads((tmp_path / 'lr' / 'meta' / 'info.json').read_text())
    assert info['features']['observation.image']['shape'] == [240, 320, 3]
    back = import_lerobot(tmp_path / 'lr', tmp_path / 'back')
    assert meta(back)['target'] == 'virtual' and meta(back)['camera'] == cam
    a = load_dataset(src, verbose=False, max_bad_fraction=0, virtual_targets=1)
    b = load_dataset(back, verbose=False, max_bad_fraction=0, virtual_targets=1)
    assert np.allclose(a.images, b.images, atol=1 / 255)    # JPEG in, PNG out: same pixels
    assert np.allclose(labels(src), labels(back), atol=1e-6)


def test_the_export_is_a_lerobot_v3_folder_that_datasets_and_pandas_read(tmp_path):
    import datasets
    import pandas as pd
    src = render_sim_dataset(tmp_path / 'ds', 4, seed=1, progress=False)
    out = export_lerobot(src, tmp_path / 'lr', fps=5, task='reach')
    info = json.loads((out / 'meta' / 'info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 5
    assert (info['total_frames'], info['total_episodes'], info['total_tasks']) == (4, 1, 1)
    assert info['features']['observation.state']['names'] == list(JOINT_NAMES)
    data = out / info['data_path'].format(chunk_index=0, file_index=0)
    ds = datasets.Dataset.from_parquet(str(data), cache_dir=str(tmp_path / 'hf'))
    assert type(ds.features['observation.image']).__name__ == 'Image'
    lab = labels(src)
    for k in range(4):
        row = ds[k]
        assert np.array_equal(np.asarray(row['observation.image']),
                              np.asarray(Image.open(src / f'images/{k:06d}.png')))
        assert np.allclose(row['observation.state'], lab[k, 2:], atol=1e-6)
        assert np.allclose(row['observation.environment_state'], lab[k, :2], atol=1e-6)
        assert (row['index'], row['frame_index'], row['episode_index']) == (k, k, 0)
        assert row['timestamp'] == pytest.approx(k / 5)
    tasks = pd.read_parquet(out / 'meta' / 'tasks.parquet')
    assert list(tasks.index) == ['reach'] and tasks.loc['reach', 'task_index'] == 0
    ep = pd.read_parquet(out / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet')
    assert ep.loc[0, ['length', 'dataset_from_index', 'dataset_to_index']].tolist() == [4, 0, 4]
    assert list(ep.loc[0, 'tasks']) == ['reach']
    stats = json.loads((out / 'meta' / 'stats.json').read_text())
    assert np.allclose(stats['observation.state']['max'], lab[:, 2:].max(0), atol=1e-6)
    assert np.array(stats['observation.image']['mean']).shape == (3, 1, 1)


def _foreign_v21(root: Path, q7: np.ndarray, frames, names, *, state_key='observation.state'):
    """A LeRobot v2.1 folder as lerobot 0.3 writes it: one parquet file per episode."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    blobs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format='PNG')
        blobs.append({'bytes': buf.getvalue(), 'path': None})
    n = len(frames)
    features = {'observation.images.top': {'dtype': 'image', 'shape': [480, 640, 3],
                                           'names': ['height', 'width', 'channel']},
                'action': {'dtype': 'float32', 'shape': [len(names)], 'names': None}}
    if state_key:
        features[state_key] = {'dtype': 'float32', 'shape': [len(names)],
                               'names': {'motors': list(names)}}
    info = {'codebase_version': 'v2.1', 'fps': 30, 'total_episodes': 1, 'total_frames': n,
            'chunks_size': 1000, 'features': features,
            'data_path': 'data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet'}
    (root / 'meta').mkdir(parents=True)
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    (root / 'data' / 'chunk-000').mkdir(parents=True)
    cols = {'observation.images.top': pa.array(blobs),
            'action': pa.array(list(q7.astype(np.float32))),
            'episode_index': pa.array([0] * n), 'timestamp': pa.array(np.arange(n) / 30.0)}
    if state_key:
        cols[state_key] = pa.array(list(q7.astype(np.float32)))
    pq.write_table(pa.table(cols), root / 'data' / 'chunk-000' / 'episode_000000.parquet')
    return root


def test_a_lerobot_dataset_of_a_robot_with_more_joints_is_imported_by_joint_names(tmp_path):
    _, q = sample_scenes(3, seed=8)
    names = ['left_s0', 'left_s1', 'left_e0', 'left_e1', 'left_w0', 'left_w1', 'left_w2']
    q7 = np.zeros((3, 7))
    q7[:, [1, 3, 5]] = q
    frames = [render(OFF, qq) for qq in q]
    src = _foreign_v21(tmp_path / 'lr', q7, frames, names)
    out = import_lerobot(src, tmp_path / 'ds')
    got = labels(out)
    assert np.allclose(got[:, 2:], q, atol=1e-6)          # float32 in the parquet
    assert np.allclose(got[:, :2], [0.5, 0.2])             # no target: placeholder, virtual
    assert meta(out)['target'] == 'virtual'
    assert meta(out)['lerobot']['joints'] == [1, 3, 5]
    ds = load_dataset(out, verbose=False, max_bad_fraction=0)
    assert len(ds) == 3
    # the same joints by index, through the CLI
    assert reach(['data', 'import-lerobot', str(src), '--out', str(tmp_path / 'ds2'),
                  '--joints', '1,3,5']) == 0
    assert np.array_equal(labels(tmp_path / 'ds2'), got)


def test_a_lerobot_dataset_without_joint_states_is_refused_naming_the_field(tmp_path, capsys):
    _, q = sample_scenes(2, seed=8)
    frames = [render(OFF, qq) for qq in q]
    src = _foreign_v21(tmp_path / 'lr', np.zeros((2, 3)), frames, JOINT_NAMES, state_key=None)
    code = reach(['data', 'import-lerobot', str(src), '--out', str(tmp_path / 'ds')])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{src / 'meta' / 'info.json'}: no joint-state feature 'observation.state'" in err
    assert 'action, observation.images.top' in err
    # in info.json but not in the data file
    info = json.loads((src / 'meta' / 'info.json').read_text())
    info['features']['observation.state'] = {'dtype': 'float32', 'shape': [3],
                                             'names': list(JOINT_NAMES)}
    (src / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match='episode_000000.parquet: no column observation.state'):
        import_lerobot(src, tmp_path / 'ds')
    # joints not named as the arm's
    with pytest.raises(LeRobotError, match="no joint named 'left_s1' \\(its names: j1, j2, j3\\)"):
        import_lerobot(_foreign_v21(tmp_path / 'lr2', np.zeros((2, 3)), frames,
                                    ['j1', 'j2', 'j3']), tmp_path / 'ds')
    assert not (tmp_path / 'ds').exists()


def test_folders_that_are_not_lerobot_datasets_are_refused(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(LeRobotError, match='meta/info.json: missing'):
        import_lerobot(tmp_path / 'empty', tmp_path / 'ds')
    _, q = sample_scenes(2, seed=8)
    src = _foreign_v21(tmp_path / 'lr', np.zeros((2, 3)), [render(OFF, x) for x in q], JOINT_NAMES)
    info = json.loads((src / 'meta' / 'info.json').read_text())
    info['features']['observation.images.wrist'] = dict(info['features']['observation.images.top'])
    (src / 'meta' / 'info.json').write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match='2 camera features .* pick one with --image-key'):
        import_lerobot(src, tmp_path / 'ds')
    net = save_net_dataset(tmp_path / 'net', np.zeros((2, 84, 84)), np.array([[0.5, 0.2]] * 2),
                           np.array([[-0.5, 1.0, 0.2]] * 2))
    with pytest.raises(LeRobotError, match='network-image dataset'):
        export_lerobot(net, tmp_path / 'lr_net')


def test_a_video_feature_is_decoded_frame_by_timestamp(tmp_path):
    import cv2
    import pyarrow as pa
    import pyarrow.parquet as pq
    _, q = sample_scenes(4, seed=9)
    frames = [render(OFF, x) for x in q]
    root = tmp_path / 'lr'
    video = root / 'videos' / 'observation.images.cam' / 'chunk-000' / 'file-000.mp4'
    video.parent.mkdir(parents=True)
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10, (640, 480))
    for f in [np.zeros_like(frames[0])] * 2 + frames:      # episode 0 starts 0.2 s into the file
        w.write(f[..., ::-1])
    w.release()
    info = {'codebase_version': 'v3.0', 'fps': 10, 'total_episodes': 1, 'chunks_size': 1000,
            'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
            'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4',
            'features': {'observation.images.cam': {'dtype': 'video', 'shape': [480, 640, 3]},
                         'observation.state': {'dtype': 'float32', 'shape': [3],
                                               'names': list(JOINT_NAMES)}}}
    (root / 'meta' / 'episodes' / 'chunk-000').mkdir(parents=True)
    (root / 'meta' / 'info.json').write_text(json.dumps(info))
    pq.write_table(pa.table({'episode_index': [0], 'videos/observation.images.cam/chunk_index': [0],
                             'videos/observation.images.cam/file_index': [0],
                             'videos/observation.images.cam/from_timestamp': [0.2]}),
                   root / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet')
    (root / 'data' / 'chunk-000').mkdir(parents=True)
    pq.write_table(pa.table({'observation.state': list(q.astype(np.float32)),
                             'episode_index': [0] * 4, 'timestamp': np.arange(4) / 10.0}),
                   root / 'data' / 'chunk-000' / 'file-000.parquet')
    out = import_lerobot(root, tmp_path / 'ds')
    got = [np.asarray(Image.open(out / f'images/{k:06d}.png'))
           for k in range(4)]
    for k in range(4):   # lossy video: each frame is nearest its own picture
        err = [np.abs(got[k].astype(int) - f).mean() for f in frames]
        assert int(np.argmin(err)) == k and err[k] < 3.0, err
