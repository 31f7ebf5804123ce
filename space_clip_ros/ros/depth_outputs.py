"""The depth output stage: depth, depth/camera_info, points and depth/colorized as one unit.

Two small public classes, so any rclpy node that already has depth (or runs the SPACE-CLIP
decoder on an encoder it runs anyway, space_clip_ros.shared) publishes by the same conventions
as `space_clip_depth`. `DepthPublisher` takes a depth map and its image and does everything
(examples/clip_labels_and_depth.py uses it); `DepthOutputs` is the publishing half the depth
node drives with its own frame path. The conventions: 32FC1 metres with NaN for no depth (REP
118), a CameraInfo scaled to the depth image, an organized PointCloud2 (x y z float32 + packed
rgb, NaN holes, is_dense false) and a fixed-range bgr8 preview; the input header on every
message; QoS from the reliability/depth shorthands with ROS's `qos_overrides` per topic;
lifecycle publishers on a lifecycle node.

`publish` builds every message of a frame before it publishes any, so a failure building one
never leaves a frame half published (a depth image whose CameraInfo never comes, or the
reverse). The message data are the frame's host buffers themselves (space_clip_ros.depth_frame
.HostBuffer): a message made by image_codec.new_message stores an array.array('B') given to its
uint8[] field as it is, on every distribution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from space_clip_ros.frame_plan import NEEDS_CAMERA, FramePlan, FrameSettings, Output
from space_clip_ros.io.image_decoding import ColorImage
from space_clip_ros.ros.camera_info import intrinsics_from_camera_info, scale_camera_info
from space_clip_ros.ros.image_codec import image_message
from space_clip_ros.ros.pointcloud import cloud_message
from space_clip_ros.ros.qos import make_qos, qos_overrides

if TYPE_CHECKING:
    import torch

    from space_clip_ros.depth_frame import FrameProducts

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks

OUTPUT_TYPES = {
    Output.DEPTH: Image,
    Output.CAMERA_INFO: CameraInfo,
    Output.POINTS: PointCloud2,
    Output.COLORIZED: Image,
}

WarnFn = Callable[[str, str], object]


class DepthOutputs:
    """The four output topics of one camera, relative to `prefix` (e.g. '' or 'front/').

    lifecycle=True creates lifecycle publishers (the node must be a LifecycleNode; nothing is
    published while it is inactive). `warn(key, message)` receives QoS incompatibility reports
    (a throttled logger in the depth node).
    """

    def __init__(
        self,
        node: Node,
        reliability: str = "reliable",
        depth: int = 2,
        prefix: str = "",
        lifecycle: bool = False,
        warn: Optional[WarnFn] = None,
    ) -> None:
        self._node = node
        self._lifecycle = lifecycle
        warn = warn or (lambda key, message: node.get_logger().warning(message))
        create = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        self.publishers = {}
        for output, msg_type in OUTPUT_TYPES.items():
            topic = prefix + output.value

            def incompatible(event, topic=topic) -> None:
                warn(
                    f"qos:{topic}",
                    f"a subscriber to '{node.resolve_topic_name(topic)}' requests QoS this "
                    f"publisher does not offer ({event.last_policy_kind}); outputs are "
                    f"{reliability}: set output_reliability:=reliable to serve every subscriber",
                )

            self.publishers[output] = create(
                msg_type,
                topic,
                make_qos(reliability, depth),  # a fresh profile each: ROS edits it in place
                qos_overriding_options=qos_overrides(),
                event_callbacks=PublisherEventCallbacks(incompatible_qos=incompatible),
            )

    def subscribed(self) -> frozenset[Output]:
        """The outputs that have at least one subscriber."""
        return frozenset(o for o, p in self.publishers.items() if p.get_subscription_count() > 0)

    def subscription_counts(self) -> dict[Output, int]:
        return {o: p.get_subscription_count() for o, p in self.publishers.items()}

    def messages(
        self, products: FrameProducts, header: Header, camera_info: Optional[CameraInfo]
    ) -> dict[Output, object]:
        """Every message of one frame, built and not yet published."""
        out: dict[Output, object] = {}
        if camera_info is not None:
            out[Output.CAMERA_INFO] = scale_camera_info(
                camera_info, products.width, products.height, header
            )
        if products.depth is not None:
            out[Output.DEPTH] = image_message(products.depth, "32FC1", header)
        if products.points is not None:
            out[Output.POINTS] = cloud_message(products.points, header)
        if products.preview is not None:
            out[Output.COLORIZED] = image_message(products.preview, "bgr8", header)
        return out

    def publish(
        self, products: FrameProducts, header: Header, camera_info: Optional[CameraInfo] = None
    ) -> frozenset[Output]:
        """Publish a frame's outputs together (all are built first); the outputs published.

        camera_info: the input camera's CameraInfo (its K and P are scaled to the depth image),
        or None to publish no depth/camera_info.
        """
        messages = self.messages(products, header, camera_info)
        for output, msg in messages.items():
            self.publishers[output].publish(msg)
        return frozenset(messages)

    def destroy(self) -> None:
        destroy = (
            self._node.destroy_lifecycle_publisher
            if self._lifecycle
            else self._node.destroy_publisher
        )
        for pub in self.publishers.values():
            destroy(pub)
        self.publishers.clear()


class DepthPublisher:
    """Publish a depth map computed anywhere as space_clip_depth publishes its own.

        publisher = DepthPublisher(node, settings=FrameSettings(max_depth=20.0))
        publisher.publish(depth, ColorImage(rgb, "rgb"), image_msg.header, camera_info_msg)

    depth: (H, W) float32 metres for `image` (a torch tensor on any device, or numpy), at the
    image's size times settings.output_scale. Only outputs with subscribers are computed; the
    cloud and depth/camera_info need camera_info (without it, depth and the preview still go
    out). The range mask, the cloud and the preview run where the depth is (FrameRenderer).
    """

    def __init__(
        self,
        node: Node,
        prefix: str = "",
        settings: FrameSettings = FrameSettings(),
        reliability: str = "reliable",
        depth: int = 2,
        device: str = "cpu",
        lifecycle: bool = False,
    ) -> None:
        from space_clip_ros.depth_frame import FrameRenderer

        self.settings = settings
        self.outputs = DepthOutputs(node, reliability, depth, prefix, lifecycle)
        self._renderer = FrameRenderer(device=device)

    def publish(
        self,
        depth: "torch.Tensor",
        image: ColorImage,
        header: Header,
        camera_info: Optional[CameraInfo] = None,
    ) -> frozenset[Output]:
        """Every output with a subscriber for this frame, together; the outputs published."""
        outputs = self.outputs.subscribed()
        intrinsics = intrinsics_from_camera_info(camera_info) if camera_info is not None else None
        if intrinsics is None:
            outputs -= NEEDS_CAMERA
        if not outputs:
            return frozenset()
        plan = FramePlan(outputs, self.settings, intrinsics)
        products = self._renderer.render_depth(depth, image, plan)
        info = camera_info if Output.CAMERA_INFO in outputs else None
        return self.outputs.publish(products, header, info)

    def destroy(self) -> None:
        self.outputs.destroy()
