from space_clip_ros.errors import InputError

"""The one error type for unreadable KITTI data: callers catch it, users read the file name."""


class KittiFormatError(InputError):
    """A KITTI file is missing, truncated or malformed; the message names file, line and fix."""
