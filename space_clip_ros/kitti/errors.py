"""The one error type for unreadable KITTI data, so callers can catch it and users read the file name."""


class KittiFormatError(ValueError):
    """A KITTI file is missing, truncated or malformed; the message names the file (and line) and the fix."""
