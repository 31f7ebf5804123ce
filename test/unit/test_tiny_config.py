"""The tiny model is defined once: training/configs/tiny.yaml's model section IS tiny_config()."""

from dataclasses import asdict
from pathlib import Path

from space_clip_ros.model.config import to_plain
from testing.tiny import tiny_config
from training.config import load_train_config

TINY_YAML = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny.yaml"


def test_tiny_yaml_model_equals_the_tiny_config_the_tests_use():
    """Change space_clip_ros/model/tiny.py and tiny.yaml together; this names the difference."""
    from_yaml = to_plain(asdict(load_train_config(TINY_YAML).model))
    from_code = to_plain(asdict(tiny_config()))
    assert from_yaml == from_code
    assert from_code["backbone"]["model_cfg"]["vision_cfg"]["layers"] == 4  # compared in full
