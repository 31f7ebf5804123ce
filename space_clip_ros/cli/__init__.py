"""The command-line layer: what several tools share, each in one place, and the tools whose
library lives in another layer.

- `model_options`: which model runs and where (--checkpoint, --backbone-weights, --device,
  --precision, --trt-cache-dir), the one estimator construction from them, and the node
  parameters of the same names;
- `arguments`: value types and single flags (WIDTHxHEIGHT sizes, the image files' --max-pixels,
  deprecated aliases);
- `verify`, `import_reference`, `kitti2bag`, `bag_accuracy`: the parser and a thin `main` of a
  tool whose work is typed library code (inference/, model/, kitti/), so no library module
  parses a command line.

Every tool's `main` returns through `errors.run_tool`, which turns an error into the exit
status. Nothing here imports torch at import time: --help answers at argparse's speed.
"""
