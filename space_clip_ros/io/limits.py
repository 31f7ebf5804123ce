"""Size limits shared by the decoders, the node's parameters and the tools (no heavy imports:
the node reads them while answering --help and parameter errors)."""

# A 4K UHD frame (3840 x 2160): above every camera this node is meant for (1920x1200 industrial
# cameras, KITTI's 1242x375), far below what lets a 2 KB PNG allocate gigabytes.
DEFAULT_MAX_PIXELS = 3840 * 2160
