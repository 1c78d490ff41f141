"""reach_ros: the ROS 2 nodes of reach, each a console entry point (ros2 run reach_ros <name>)."""
from setuptools import setup

package_name = 'reach_ros'

NODES = {
    'webcam': 'reach_ros.webcam:main',
    'sim_camera': 'reach_ros.sim_camera:main',
    'perception': 'reach_ros.perception:main',
    'controller': 'reach_ros.controller:main',
    'baxter_bridge': 'reach_ros.baxter_bridge:main',
    'baxter_rosbridge': 'reach_ros.baxter_rosbridge:main',
    'fake_baxter': 'reach_ros.fake_baxter:main',
    'collect_images': 'reach_ros.collect_images:main',
    'live_view': 'reach_ros.live_view:main',
}

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='reach maintainers',
    maintainer_email='reach@example.com',
    description='reach ROS 2 nodes: webcam, perception, controller, Baxter bridge, fake hardware',
    license='Apache-2.0',
    entry_points={'console_scripts': [f'{name} = {target}' for name, target in NODES.items()]},
)
