"""reach_core: an ament_python package that is also a plain pip-installable Python package.

`colcon build` (ament_python) and `pip install -e src/reach_core` both use this file.
Training recipes under reach_core/recipes/ ship as package data (``reach train ... --config
NAME``).  Trained models under reach_core/models/ ship twice: as package data (so that
``importlib.resources.files('reach_core') / 'models'`` works) and under share/reach_core/models
(the ROS convention, found with ament_index_python's get_package_share_directory).
"""
import os
from collections import defaultdict

from setuptools import find_packages, setup

package_name = 'reach_core'
HERE = os.path.dirname(os.path.abspath(__file__))


def _model_files():
    """Every file under reach_core/models/, as paths relative to this directory."""
    root = os.path.join(HERE, package_name, 'models')
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__' and not d.startswith('.'))
        for name in sorted(filenames):
            if name.endswith('.pyc') or name.startswith('.'):
                continue
            found.append(os.path.relpath(os.path.join(dirpath, name), HERE))
    return found


def _data_files():
    data_files = [
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ]
    by_dir = defaultdict(list)
    for rel in _model_files():
        # reach_core/models/a/b.pt -> share/reach_core/models/a
        sub = os.path.dirname(os.path.relpath(rel, package_name))
        by_dir[os.path.join('share', package_name, sub)].append(rel)
    data_files.extend(sorted(by_dir.items()))
    return data_files


def _package_data():
    """The shipped models and the training recipes (reach_core/recipes/*.yaml)."""
    prefix = package_name + os.sep
    return {package_name: [rel[len(prefix):] for rel in _model_files()] + ['recipes/*.yaml']}


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=[package_name, package_name + '.*']),
    package_data=_package_data(),
    include_package_data=False,
    data_files=_data_files(),
    # torch is deliberately absent: an unpinned torch pulls a multi-GB CUDA build.
    # scripts/setup_env.sh installs torch==2.13.0 (CPU) first; see requirements.txt.
    install_requires=['numpy', 'matplotlib', 'tqdm'],
    zip_safe=False,
    maintainer='reach maintainers',
    maintainer_email='reach@example.com',
    description='ROS-free science of reach: modular deep Q networks for visually guided reaching',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'reach = reach_core.cli:main',
        ],
    },
)
