"""Print messages of a topic (``ros2 topic echo`` where the ros2 CLI is not installed), or save
an image topic's frame as PNG (for ``/perception/debug_image``, the annotated image).

    python -m reach_bringup.echo /scene_config --count 3
    python -m reach_bringup.echo /perception/debug_image --save debug.png

The type is taken from the ROS graph (the topic must have a publisher). Images are subscribed
best effort (sensor-data QoS), everything else reliable; /reach/status and /reach/target latched.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time


def _fields(msg, indent: str = '') -> str:
    out = []
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, 'get_fields_and_field_types'):
            out.append(f'{indent}{name}:\n{_fields(value, indent + "  ")}')
        else:
            if hasattr(value, 'tolist'):
                value = value.tolist()
            if isinstance(value, (list, bytes, bytearray)) and len(value) > 16:
                value = f'<{len(value)} values>'
            out.append(f'{indent}{name}: {value}')
    return '\n'.join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m reach_bringup.echo', description=__doc__.split('\n\n')[0])
    ap.add_argument('topic')
    ap.add_argument('--count', type=int, default=1, help='messages to print (default 1; 0: until Ctrl-C)')
    ap.add_argument('--save', metavar='PNG', help='image topics: save the frame as PNG')
    ap.add_argument('--timeout', type=float, default=20.0, help='give up after this many seconds')
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data

    from reach_ros.common import COMMAND_QOS, LATCHED_QOS, image_to_rgb

    rclpy.init()
    node = rclpy.create_node('reach_echo')
    try:
        end = time.monotonic() + args.timeout
        type_name = None
        while type_name is None and time.monotonic() < end:
            types = dict(node.get_topic_names_and_types())
            if args.topic in types and node.count_publishers(args.topic):
                type_name = types[args.topic][0]
            else:
                rclpy.spin_once(node, timeout_sec=0.2)
        if type_name is None:
            print(f'error: nobody publishes {args.topic} (after {args.timeout:g} s); is the graph '
                  f'running, in the same ROS_DOMAIN_ID?', file=sys.stderr)
            return 1
        pkg, _, cls = type_name.split('/')
        msg_type = getattr(importlib.import_module(f'{pkg}.msg'), cls)
        is_image = type_name == 'sensor_msgs/msg/Image'
        qos = qos_profile_sensor_data if is_image or args.topic.endswith('joint_states') else \
            (LATCHED_QOS if args.topic in ('/reach/status', '/reach/target') else COMMAND_QOS)
        got = []
        node.create_subscription(msg_type, args.topic, got.append, qos)
        printed = 0
        while (args.count == 0 or printed < args.count) and time.monotonic() < end + 10:
            rclpy.spin_once(node, timeout_sec=0.2)
            while got and (args.count == 0 or printed < args.count):
                msg = got.pop(0)
                printed += 1
                if args.save and is_image:
                    from PIL import Image
                    Image.fromarray(image_to_rgb(msg)).save(args.save)
                    print(f'saved {msg.width}x{msg.height} frame of {args.topic} to {args.save}')
                else:
                    print(_fields(msg) + '\n---', flush=True)
        if printed == 0:
            print(f'error: no message on {args.topic}', file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    raise SystemExit(main())
