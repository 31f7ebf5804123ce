"""Depth node parameters: NodeConfig validation and the ROS parameter descriptors (no DDS)."""

import pytest

from space_clip_ros.ros import params


def test_defaults_are_valid_and_every_bad_value_is_named_with_a_fix():
    cfg = params.NodeConfig().validated()
    assert cfg.output_reliability == "reliable" and cfg.input_reliability == "best_available"
    bad = params.NodeConfig(
        min_depth=50.0,
        max_depth=10.0,
        device="gpu",
        precision="fp8",
        point_decimation=0,
        colorize_min=5.0,
        colorize_max=5.0,
        input_reliability="fast",
    )
    with pytest.raises(params.ParameterError) as info:
        bad.validated()
    text = str(info.value)
    for words in (
        "min_depth (50.0) must be below max_depth (10.0)",
        "device: 'gpu' is not valid",
        "precision: 'fp8' is not one of auto, fp32, fp16, bf16",
        "point_decimation: 0 is outside [1, 64]",
        "colorize_min (5.0) must be below colorize_max",
        "input_reliability: 'fast' is not one of",
    ):
        assert words in text
    assert params.NodeConfig(device="cuda:1").problems() == []


def test_descriptors_carry_description_and_range():
    d = params.NodeConfig.descriptor("point_decimation")
    assert "n-th" in d.description and (
        d.integer_range[0].from_value,
        d.integer_range[0].to_value,
    ) == (1, 64)
    d = params.NodeConfig.descriptor("max_depth")
    assert d.floating_point_range[0].to_value == 1000.0
    assert "fp16" in params.NodeConfig.descriptor("precision").additional_constraints
