"""Real-image collection on the robot: ros2 launch reach_bringup collect.launch.py out_dir:=data/real_frames

    webcam --/camera/image_raw--> collect_images --/reach/joint_delta--> baxter_bridge
                                        ^                                      |
                               /robot/joint_states              /robot/limb/left/joint_command
                                        |                                      v
                                        +---------------- Baxter (ros1_bridge, or rosbridge:=true)

collect_images drives the arm through the joint grid of config/collect_images.yaml, one bridge
step at a time, and records a frame + joint angles per grid point into out_dir (the dataset
format of reach_core.datasets). When it exits, the launch shuts down. Rehearse it first in
simulation: collect_sim.launch.py (fake robot and simulated camera).

ARGUMENTS and NODES are plain literals on purpose: tests/test_ros_launch.py reads them (with
ast, without the launch library), and reach_bringup.run starts exactly these processes where
ros2 launch is not installed.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.conditions import IfCondition
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# name: (default, description)
ARGUMENTS = {
    'out_dir': ('data/real_frames', 'dataset folder to write (resumed when it exists)'),
    'video_device': ('/dev/video0', 'the webcam (V4L2 device)'),
    'rosbridge': ('false', 'true: reach Baxter through rosbridge_server on its ROS 1 side (the '
                          'baxter_rosbridge node, no ROS 1 here; docs/baxter.md); false: Baxter\'s '
                          'topics come over DDS (ros1_bridge)'),
    'rosbridge_host': ('localhost', 'rosbridge: host of rosbridge_server (Baxter\'s workstation)'),
    'rosbridge_port': ('9090', 'rosbridge: port of rosbridge_server'),
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
        'package': 'reach_ros', 'executable': 'collect_images', 'name': 'collect_images',
        'enclave': '/reach/collect_images',
        'namespace': '',
        'params': ['camera.yaml', 'collect_images.yaml'],
        'arguments': {'tool': ['tool', 'str'],
                      'out_dir': ['out_dir', 'str']},
        'remappings': [['image', '/camera/image_raw'], ['joint_states', '/robot/joint_states'],
                       ['joint_command', '/robot/limb/left/joint_command'],
                       ['joint_delta', '/reach/joint_delta']],
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
]

# the launch ends when this node exits (the collection is done or stopped)
EXIT_WITH = 'collect_images'

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
        node = Node(
            package=spec['package'], executable=spec['executable'], name=spec['name'],
            namespace=spec['namespace'], output='screen', emulate_tty=True,
            parameters=[PathJoinSubstitution([config, f]) for f in spec['params']] + [overrides],
            remappings=[tuple(r) for r in spec['remappings']],
            ros_arguments=['--enclave', spec['enclave']],
            condition=IfCondition(LaunchConfiguration(spec['condition']))
            if spec.get('condition') else None)
        actions.append(node)
        if spec['name'] == EXIT_WITH:
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node, on_exit=[EmitEvent(event=Shutdown(reason='collection over'))])))
    return LaunchDescription(actions)
