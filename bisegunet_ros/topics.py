"""Topic names of a camera: the one definition the node, the launch file and rviz2's config share."""
from __future__ import annotations


def camera_topic(camera: str, name: str) -> str:
    """`<camera>/<name>`, relative to the node's namespace unless `camera` is absolute ("" = none)."""
    return f"{camera.rstrip('/')}/{name}" if camera else name


def resolve_topic(node_namespace: str, name: str) -> str:
    """Fully qualified name of topic `name` of a node in `node_namespace` (ROS name rules, no ~ or remaps)."""
    if name.startswith("/"):
        return name
    namespace = node_namespace.strip("/")
    return f"/{namespace}/{name}" if namespace else f"/{name}"
