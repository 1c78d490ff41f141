"""Real-image collection, rehearsed in simulation: ros2 launch reach_bringup collect_sim.launch.py out_dir:=data/sim_frames

    fake_baxter --/robot/joint_states--> sim_camera --/camera/image_raw--> collect_images
        ^                                                                      |
    /robot/limb/left/joint_command <-- baxter_bridge <--/reach/joint_delta-----+

collect_images drives the arm through the joint grid of config/collect_images.yaml, one bridge
step at a time, and records a frame + joint angles per grid point into out_dir (the dataset
format of reach_core.datasets). When it exits, the launch shuts down. The same as
collect.launch.py with the fake robot and the simulated camera in place of Baxter and the webcam.

ARGUMENTS and NODES are plain literals on purpose: tests/test_ros_launch.py reads them (with
ast, without the launch library), and reach_bringup.run starts exactly these processes where
ros2 launch is not installed.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# name: (default, description)
ARGUMENTS = {
    'out_dir': ('data/sim_frames', 'dataset folder to write (resumed when it exists)'),
    'latency_s': ('0.0', 'fake Baxter: joint state latency (s)'),
    'noise_std': ('0.0', 'fake Baxter: joint state noise (rad)'),
    'use_sim_time': ('false', 'use /clock (only with a simulator or bag that publishes it)'),
    'tool': ('paper', 'tool point that reaches the target: paper (0.28 m from w1, the shipped '
                      'models\'), electric_gripper_fingertips (0.3907 m) or metres; models and '
                      'datasets of another tool are refused (docs/tool_point.md)'),
}

# Each node: config files (in share/reach_bringup/config, in order) and parameters set from
# launch arguments: {parameter: [argument, type]}. use_sim_time is passed to every node.
NODES = [
    {
        'package': 'reach_ros', 'executable': 'fake_baxter', 'name': 'fake_baxter',
        'namespace': '',
        'params': ['fake_baxter.yaml'],
        'arguments': {'latency_s': ['latency_s', 'float'], 'noise_std': ['noise_std', 'float']},
        'remappings': [['joint_command', '/robot/limb/left/joint_command'],
                       ['joint_states', '/robot/joint_states']],
    },
    {
        'package': 'reach_ros', 'executable': 'sim_camera', 'name': 'sim_camera',
        'namespace': 'camera',
        'params': ['camera.yaml', 'sim_camera.yaml'],
        'arguments': {'tool': ['tool', 'str']},
        'remappings': [['joint_states', '/robot/joint_states'], ['target', '/reach/target']],
    },
    {
        'package': 'reach_ros', 'executable': 'baxter_bridge', 'name': 'baxter_bridge',
        'namespace': '',
        'params': ['baxter_bridge.yaml'],
        'arguments': {},
        'remappings': [['joint_delta', '/reach/joint_delta'],
                       ['joint_states', '/robot/joint_states'],
                       ['joint_command', '/robot/limb/left/joint_command']],
    },
    {
        'package': 'reach_ros', 'executable': 'collect_images', 'name': 'collect_images',
        'namespace': '',
        'params': ['camera.yaml', 'collect_images.yaml'],
        'arguments': {'tool': ['tool', 'str'],
                      'out_dir': ['out_dir', 'str']},
        'remappings': [['image', '/camera/image_raw'], ['joint_states', '/robot/joint_states'],
                       ['joint_command', '/robot/limb/left/joint_command'],
                       ['joint_delta', '/reach/joint_delta']],
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
            remappings=[tuple(r) for r in spec['remappings']])
        actions.append(node)
        if spec['name'] == EXIT_WITH:
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node, on_exit=[EmitEvent(event=Shutdown(reason='collection over'))])))
    return LaunchDescription(actions)
