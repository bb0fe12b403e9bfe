"""A ROS node in a child process: start it, wait until its topics exist, stop it cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import time


class RosProcess:
    """Child process with the test's ROS environment; SIGINT first, then SIGKILL, never left running."""

    def __init__(self, cmd: list[str], env: dict | None = None, cwd: str | None = None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_topics(self, topics: list[str], timeout: float = 30.0) -> None:
        """Block until every topic is advertised; raise with the child's output if it never is."""
        import rclpy
        from rclpy.context import Context

        context = Context()
        rclpy.init(context=context)
        node = rclpy.create_node(f"topic_waiter_{os.getpid()}", context=context)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                names = {n for n, _ in node.get_topic_names_and_types()}
                if all(t in names for t in topics):
                    return
                if not self.alive():
                    break
                time.sleep(0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown(context=context)
        out = self.stop()
        raise TimeoutError(f"{self.cmd} did not advertise {topics} within {timeout} s; output:\n{out}")

    def stop(self, timeout: float = 10.0) -> str:
        """SIGINT, wait, then SIGKILL the whole process group; returns everything it printed."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.output += self.proc.stdout.read()
            self.proc.stdout.close()
        return self.output
