"""A small rclpy test client for the reach graph: record topics, publish, call services, wait.

It has its own rclpy context (and so its own ROS_DOMAIN_ID), so tests and benchmarks can use it
beside other rclpy code in the same process.
"""
from __future__ import annotations

import os
import random
import time
from typing import Any, Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor


def pick_domain_id(salt: int = 0) -> int:
    """A ROS_DOMAIN_ID for one test run: from REACH_TEST_DOMAIN_ID, else random in 10..99 by pid."""
    if os.environ.get('REACH_TEST_DOMAIN_ID'):
        return int(os.environ['REACH_TEST_DOMAIN_ID'])
    return random.Random(os.getpid() * 1009 + salt + time.time_ns() // 1_000_000).randint(10, 99)


class Probe:
    def __init__(self, domain_id: int, name: str = 'reach_probe'):
        self.context = rclpy.Context()
        # not sys.argv: reach_bringup.run's launch arguments (live_view:=true) are no remap rules
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.records: dict[str, list[tuple[int, Any]]] = {}

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def record(self, msg_type, topic: str, qos, callback: Callable | None = None) -> list:
        """Keep every message on ``topic`` as (receive time ns, message); return that list."""
        if topic in self.records and callback is None:
            return self.records[topic]      # already recorded: one subscription per topic
        store = self.records.setdefault(topic, [])

        def on_msg(msg):
            store.append((time.time_ns(), msg))
            if callback is not None:
                callback(msg)
        self.node.create_subscription(msg_type, topic, on_msg, qos)
        return store

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def wait_for_service(self, srv_type, name: str, timeout: float) -> bool:
        """Whether the service ``name`` is available within ``timeout`` seconds (spinning)."""
        client = self.node.create_client(srv_type, name)
        try:
            return self.spin_until(client.service_is_ready, timeout)
        finally:
            self.node.destroy_client(client)

    def call(self, srv_type, name: str, request=None, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {name} not available after {timeout} s')
            future = client.call_async(request if request is not None else srv_type.Request())
            self.executor.spin_until_future_complete(future, timeout_sec=timeout)
            if not future.done():
                raise TimeoutError(f'service {name} did not answer within {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
