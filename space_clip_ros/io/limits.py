"""Pixel limits, one per kind of input, shared by the decoders, the node's parameters and the
tools (no heavy imports: the node reads them while answering --help and parameter errors).

An image larger than its limit is refused from its declared size, before it is decoded: a 2 KB
PNG can claim 13000x13000 pixels (4.3 GB decoded). The two kinds differ in what is plausible:

- camera frames (Image and CompressedImage messages; the node's `max_image_pixels`): a robot
  camera sends at most a few megapixels, and every frame costs memory again;
- image files named on a command line (`space-clip-predict` / `space-clip-verify`
  --max-pixels): photos are larger than camera frames, one at a time.
"""

# A 4K UHD frame (3840 x 2160): above every camera this node is meant for (1920x1200 industrial
# cameras, KITTI's 1242x375).
DEFAULT_MAX_FRAME_PIXELS = 3840 * 2160
# 50 MP: more than a robot camera or 8K video (33 MP) sends, room for a DSLR photo.
DEFAULT_MAX_FILE_PIXELS = 50_000_000
