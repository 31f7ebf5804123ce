"""Zero-shot labels and metric depth from ONE pass of the CLIP encoder a robot already runs.

A perception node that classifies what the camera sees with open_clip (zero-shot, against a list
of labels) gets SPACE-CLIP depth from the very same encoder call: `attach` hooks the trained
decoder onto the encoder's blocks, `encode_image` runs once, and `tap.depth()` decodes the
hidden states that call computed. DepthPublisher then publishes depth, depth/camera_info, points
and depth/colorized exactly as space_clip_depth does.

    ros2 run space_clip_ros clip_labels_and_depth --ros-args -p checkpoint:=CKPT \\
        -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
    python examples/clip_labels_and_depth.py --ros-args -p checkpoint:=CKPT ...   # from source

Parameters: checkpoint (a SPACE-CLIP decoder trained on this encoder: its config.yaml names the
tower, and attach refuses another), clip_model (open_clip name, ViT-B-16), clip_pretrained (tag
or local weights file, openai), clip_model_config (optional JSON of a custom open_clip
architecture, registered under its file name), labels (comma-separated), device.
Topics: image, camera_info in; labels (std_msgs/String, JSON {label: probability}), depth,
depth/camera_info, points, depth/colorized out.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import open_clip
import torch
import torch.nn.functional as F
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from space_clip_ros.errors import ConfigError
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.io.limits import DEFAULT_MAX_FRAME_PIXELS
from space_clip_ros.ros.camera_info import intrinsics_from_camera_info
from space_clip_ros.ros.depth_outputs import DepthPublisher
from space_clip_ros.ros.image_codec import decode_image
from space_clip_ros.ros.node_main import run_node, spin
from space_clip_ros.runtime import resolve_device
from space_clip_ros.shared import attach

NODE_NAME = "clip_labels_and_depth"
DEFAULT_LABELS = "car,person,bicycle,tree,building,road,sky"


class ClipLabelsAndDepth(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        p = {
            name: self.declare_parameter(name, default).value
            for name, default in (
                ("checkpoint", ""),
                ("clip_model", "ViT-B-16"),
                ("clip_pretrained", "openai"),
                ("clip_model_config", ""),
                ("labels", DEFAULT_LABELS),
                ("device", "auto"),
            )
        }
        if not p["checkpoint"]:
            raise ConfigError(
                "not set",
                field="checkpoint",
                fix="-p checkpoint:=DIR, a decoder trained on this encoder",
            )
        self.device = resolve_device(p["device"])
        if p["clip_model_config"]:
            open_clip.add_model_config(p["clip_model_config"])
        self.model = open_clip.create_model(
            p["clip_model"], pretrained=p["clip_pretrained"] or None, device=self.device
        ).eval()
        self.labels = [label.strip() for label in p["labels"].split(",") if label.strip()]
        prompts = [f"a photo of a {label}" for label in self.labels]
        tokens = open_clip.get_tokenizer(p["clip_model"])(prompts)
        with torch.no_grad():
            self.text = F.normalize(self.model.encode_text(tokens.to(self.device)), dim=-1)
        # The decoder hooks onto this model's own encoder: no second copy, no second pass.
        self.tap = attach(self.model, p["checkpoint"])
        visual = self.model.visual
        self.input_size = tuple(visual.image_size)
        self.mean = torch.tensor(visual.image_mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(visual.image_std, device=self.device).view(1, 3, 1, 1)
        self.label_pub = self.create_publisher(String, "labels", 10)
        self.depth = DepthPublisher(self, device=str(self.device))
        self.camera_info: Optional[CameraInfo] = None
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, 10)
        self.create_subscription(Image, "image", self._on_image, 10)
        self.get_logger().info(
            f"{p['clip_model']} labels {self.labels} and depth from one encoder pass "
            f"on {self.device}"
        )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_image(self, msg: Image) -> None:
        image = decode_image(msg, DEFAULT_MAX_FRAME_PIXELS)
        height, width = image.pixels.shape[:2]
        x = torch.from_numpy(image.rgb.copy()).to(self.device).permute(2, 0, 1)[None].float()
        x = F.interpolate(x / 255.0, size=self.input_size, mode="bilinear", antialias=True)
        with torch.no_grad():
            features = self.model.encode_image((x - self.mean) / self.std)  # the one pass
        probabilities = (100.0 * F.normalize(features, dim=-1) @ self.text.T).softmax(dim=-1)[0]
        self.label_pub.publish(
            String(data=json.dumps(dict(zip(self.labels, probabilities.tolist()))))
        )
        camera = self._intrinsics(width, height)  # depth made metric for this camera
        depth = self.tap.depth(size=(height, width), camera=camera)[0, 0]  # the same call's
        self.depth.publish(depth, image, msg.header, self.camera_info)

    def _intrinsics(self, width: int, height: int) -> Optional[Intrinsics]:
        info = self.camera_info
        if info is None or (info.width, info.height) != (width, height):
            return None  # the tap assumes the training camera and says so
        return intrinsics_from_camera_info(info)


def main(args: Optional[list[str]] = None) -> int:
    """Exit codes as the package's nodes give them (node_main.run_node): 0 after Ctrl-C or a
    launch stopping it, 2 for a bad parameter or checkpoint, named."""

    def serve(argv: list[str]) -> int:
        node = ClipLabelsAndDepth()
        try:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            spin(executor)
        finally:
            node.tap.detach()
            node.destroy_node()
        return 0

    return run_node("clip_labels_and_depth", args, serve)


if __name__ == "__main__":
    sys.exit(main())
