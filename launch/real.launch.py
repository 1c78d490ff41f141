"""Webcam + Baxter: ros2 launch reach_bringup real.launch.py video_device:=/dev/video0

    webcam --/camera/image_raw--> perception --/scene_config--> controller
                                      ^                             |
                         /robot/joint_states                /reach/joint_delta
                                      |                             v
    Baxter <--/robot/limb/left/joint_command (baxter_core_msgs/JointCommand)-- baxter_bridge

The same perception, controller and baxter_bridge as sim.launch.py; the webcam replaces
sim_camera and the robot replaces fake_baxter. Baxter itself runs ROS 1: its topics reach this
graph through ros1_bridge (with baxter_core_msgs on both sides), or, with rosbridge:=true, through
rosbridge_server on the robot's side and the baxter_rosbridge node here (docs/baxter.md).

ARGUMENTS and NODES are plain literals on purpose: tests/test_ros_launch.py reads them (with
ast, without the launch library) to check every executable, parameter file, parameter name and
remapping.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# name: (default, description)
ARGUMENTS = {
    'video_device': ('/dev/video0', 'the webcam (V4L2 device)'),
    'control_model': ('', 'controller checkpoint (.pt), or a combined end-to-end one such as '
                          'end2end_ee2ft.pt (its control half); empty: the shipped control_dof3.pt'),
    'perception_model': ('', 'perception checkpoint (.pt), or a combined end-to-end one (its '
                             'perception half); empty: GROUND TRUTH joint angles from the robot '
                             'and the set target (no vision)'),
    'perception_tta': ('1', 'perception network: test-time augmentation, the median over the '
                             'image shifted by up to this many pixels (0..3; 0: off; only for '
                             'networks trained with camera shifts)'),
    'perception_tta_pattern': ('ring', 'perception network: the shifts of test-time augmentation, '
                                       'ring (the image shifted along each axis, 4 copies for tta '
                                       '1), cross (the ring and the image, 5) or square (every '
                                       'shift, 9)'),
    'target_x': ('0.5', 'virtual target x (m, arm plane, forward); later: /reach/target'),
    'target_y': ('0.2', 'virtual target y (m, arm plane, up)'),
    'rosbridge': ('false', 'true: reach Baxter through rosbridge_server on its ROS 1 side (the '
                          'baxter_rosbridge node, no ROS 1 here; docs/baxter.md); false: Baxter\'s '
                          'topics come over DDS (ros1_bridge)'),
    'rosbridge_host': ('localhost', 'rosbridge: host of rosbridge_server (Baxter\'s workstation)'),
    'rosbridge_port': ('9090', 'rosbridge: port of rosbridge_server'),
    'live_view': ('false', 'true: stream the loop to the Foxglove app (the live_view node: camera, '
                           'estimate, measured and commanded joints; docs/live_view.md)'),
    'live_view_port': ('8765', 'live_view: port of its Foxglove WebSocket server'),
    'use_sim_time': ('false', 'use /clock (only when replaying a bag that publishes it)'),
    'tool': ('paper', 'tool point that reaches the target: paper (0.28 m from w1, the shipped '
                      'models\'), electric_gripper_fingertips (0.3907 m) or metres; models and '
                      'datasets of another tool are refused (docs/tool_point.md)'),
}

# Each node: its SROS2 enclave (docker/security/policy.xml says what it may publish, subscribe
# and call when ROS_SECURITY_ENABLE=true; ignored otherwise; docs/safety.md), config files (in
# share/reach_bringup/config, in order) and parameters set from launch arguments:
# {parameter: [argument, type]}. use_sim_time is passed to every node.
NODES = [
    {
        'package': 'reach_ros', 'executable': 'webcam', 'name': 'webcam',
        'enclave': '/reach/webcam',
        'namespace': 'camera',
        'params': ['webcam.yaml'],
        'arguments': {'video_device': ['video_device', 'str']},
        'remappings': [],
    },
    {
        'package': 'reach_ros', 'executable': 'perception', 'name': 'perception',
        'enclave': '/reach/perception',
        'namespace': '',
        'params': ['camera.yaml', 'perception.yaml'],
        'arguments': {'tool': ['tool', 'str'],
                      'model_path': ['perception_model', 'str'],
                      'tta': ['perception_tta', 'int'],
                      'tta_pattern': ['perception_tta_pattern', 'str'],
                      'target_x': ['target_x', 'float'], 'target_y': ['target_y', 'float']},
        'remappings': [['image', '/camera/image_raw'], ['joint_states', '/robot/joint_states'],
                       ['target', '/reach/target'], ['scene_config', '/scene_config']],
    },
    {
        'package': 'reach_ros', 'executable': 'controller', 'name': 'controller',
        'enclave': '/reach/controller',
        'namespace': '',
        'params': ['controller.yaml'],
        'arguments': {'tool': ['tool', 'str'],
                      'model_path': ['control_model', 'str']},
        'remappings': [['scene_config', '/scene_config'], ['joint_delta', '/reach/joint_delta'],
                       ['status', '/reach/status']],
    },
    {
        'package': 'reach_ros', 'executable': 'baxter_bridge', 'name': 'baxter_bridge',
        'enclave': '/reach/baxter_bridge',
        'namespace': '',
        'params': ['baxter_bridge.yaml'],
        'arguments': {},
        'remappings': [['joint_delta', '/reach/joint_delta'],
                       ['joint_states', '/robot/joint_states'],
                       ['joint_command', '/robot/limb/left/joint_command']],
    },
    {
        # only with rosbridge:=true: Baxter's ROS 1 topics through rosbridge_server (docs/baxter.md);
        # it runs in the robot-side enclave (it stands where ros1_bridge would)
        'package': 'reach_ros', 'executable': 'baxter_rosbridge', 'name': 'baxter_rosbridge',
        'enclave': '/reach/robot',
        'condition': 'rosbridge',
        'namespace': '',
        'params': ['baxter_rosbridge.yaml'],
        'arguments': {'rosbridge_host': ['rosbridge_host', 'str'],
                      'rosbridge_port': ['rosbridge_port', 'int']},
        'remappings': [['joint_command', '/robot/limb/left/joint_command'],
                       ['joint_states', '/robot/joint_states']],
    },
    {
        # only with live_view:=true: the loop in the Foxglove app (docs/live_view.md); it only listens
        'package': 'reach_ros', 'executable': 'live_view', 'name': 'live_view',
        'enclave': '/reach/live_view',
        'condition': 'live_view',
        'namespace': '',
        'params': ['live_view.yaml'],
        'arguments': {'port': ['live_view_port', 'int']},
        'remappings': [['image', '/camera/image_raw'], ['debug_image', '/perception/debug_image'],
                       ['scene_config', '/scene_config'], ['joint_states', '/robot/joint_states'],
                       ['joint_command', '/robot/limb/left/joint_command'],
                       ['status', '/reach/status']],
    },
]

_TYPES = {'str': str, 'float': float, 'int': int, 'bool': bool}


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare('reach_bringup'), 'config'])
    actions = [DeclareLaunchArgument(name, default_value=default, description=text)
               for name, (default, text) in ARGUMENTS.items()]
    for spec in NODES:
        overrides = {param: ParameterValue(LaunchConfiguration(arg), value_type=_TYPES[kind])
                     for param, (arg, kind) in spec['arguments'].items()}
        overrides['use_sim_time'] = ParameterValue(LaunchConfiguration('use_sim_time'),
                                                   value_type=bool)
        actions.append(Node(
            package=spec['package'], executable=spec['executable'], name=spec['name'],
            namespace=spec['namespace'], output='screen', emulate_tty=True,
            parameters=[PathJoinSubstitution([config, f]) for f in spec['params']] + [overrides],
            remappings=[tuple(r) for r in spec['remappings']],
            ros_arguments=['--enclave', spec['enclave']],
            condition=IfCondition(LaunchConfiguration(spec['condition']))
            if spec.get('condition') else None))
    return LaunchDescription(actions)
