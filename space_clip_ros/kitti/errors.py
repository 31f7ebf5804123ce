"""The one error type for unreadable KITTI data: callers catch it, users read the file name."""

from space_clip_ros.errors import InputError


class KittiFormatError(InputError):
    """A KITTI file is missing, truncated or malformed; the message names file, line and fix."""
