from space_clip_ros.errors import InputError

"""The one error type for unreadable KITTI data, so callers can catch it and users read the file name."""


class KittiFormatError(InputError):
    """A KITTI file is missing, truncated or malformed; the message names the file (and line) and the fix."""
