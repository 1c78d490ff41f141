"""reach_bringup: installs the repository's launch/ and config/ into share/reach_bringup.

launch/ and config/ in this directory are symbolic links to the top-level directories of the
repository, where the files live.
"""
from glob import glob

from setuptools import setup

package_name = 'reach_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', sorted(glob('launch/*.launch.py'))),
        ('share/' + package_name + '/config', sorted(glob('config/*.yaml') + glob('config/*.xml'))),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='reach maintainers',
    maintainer_email='reach@example.com',
    description='reach launch files (sim and real) and parameter files',
    license='Apache-2.0',
)
