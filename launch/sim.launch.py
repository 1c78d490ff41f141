"""The whole reaching loop without a robot: ros2 launch reach_bringup sim.launch.py

    fake_baxter --/robot/joint_states--> sim_camera --/camera/image_raw--> perception
        ^                                                                      |
        |                                                                 /scene_config
        |                                                                      v
    /robot/limb/left/joint_command <-- baxter_bridge <--/reach/joint_delta-- controller

Only fake_baxter and sim_camera differ from real.launch.py (robot and webcam); perception,
controller and baxter_bridge run unchanged. Parameters come from reach_bringup's config/ files;
the launch arguments below override a few of them.

ARGUMENTS and NODES are plain literals on purpose: tests/test_ros_launch.py reads them (with
ast, without the launch library) to check every executable, parameter file, parameter name and
remapping, and tests/test_ros_graph.py starts exactly these processes.
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
    'control_model': ('', 'controller checkpoint (.pt), or a combined end-to-end one such as '
                          'end2end_ee2ft.pt (its control half); empty: the shipped control_dof3.pt'),
    'perception_model': ('', 'perception checkpoint (.pt), or a combined end-to-end one (its '
                             'perception half); empty: ground truth from the fake '
                             'robot (no vision)'),
    'perception_tta': ('1', 'perception network: test-time augmentation, the median over the '
                             'image shifted by up to this many pixels (0..3; 0: off; only for '
                             'networks trained with camera shifts)'),
    'perception_tta_pattern': ('ring', 'perception network: the shifts of test-time augmentation, '
                                       'ring (the image shifted along each axis, 4 copies for tta '
                                       '1), cross (the ring and the image, 5) or square (every '
                                       'shift, 9)'),
    'target_x': ('0.5', 'initial target x (m, arm plane, forward); later: /reach/target'),
    'target_y': ('0.2', 'initial target y (m, arm plane, up)'),
    'camera_renderer': ('simple', 'simulated webcam: simple (the paper\'s simulator), hifi (the '
                                  'higher-fidelity MuJoCo domain, for a perception network) or '
                                  'proxy (the held-out realistic domain: raw frames of a '
                                  'hand-placed, distorting camera)'),
    'camera_fps': ('30.0', 'simulated webcam frame rate (Hz); <= 10 with camera_renderer:=hifi, '
                           '<= 5 with proxy'),
    'latency_s': ('0.0', 'fake Baxter: joint state latency (s)'),
    'noise_std': ('0.0', 'fake Baxter: joint state noise (rad)'),
    'live_view': ('false', 'true: stream the loop to the Foxglove app (the live_view node: camera, '
                           'estimate, measured and commanded joints; docs/live_view.md)'),
    'live_view_port': ('8765', 'live_view: port of its Foxglove WebSocket server'),
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
        'arguments': {'tool': ['tool', 'str'],
                      'renderer': ['camera_renderer', 'str'], 'fps': ['camera_fps', 'float']},
        'remappings': [['joint_states', '/robot/joint_states'], ['target', '/reach/target']],
    },
    {
        'package': 'reach_ros', 'executable': 'perception', 'name': 'perception',
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
        'namespace': '',
        'params': ['controller.yaml'],
        'arguments': {'tool': ['tool', 'str'],
                      'model_path': ['control_model', 'str']},
        'remappings': [['scene_config', '/scene_config'], ['joint_delta', '/reach/joint_delta'],
                       ['status', '/reach/status']],
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
        # only with live_view:=true: the loop in the Foxglove app (docs/live_view.md); it only listens
        'package': 'reach_ros', 'executable': 'live_view', 'name': 'live_view',
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
            condition=IfCondition(LaunchConfiguration(spec['condition']))
            if spec.get('condition') else None))
    return LaunchDescription(actions)
