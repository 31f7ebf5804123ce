"""The golden fixture itself (testing/golden.py): in the current checkpoint format, so loading it
is silent. Every load used to warn that its aux-head kernels were "of an earlier version" (issue
17, item 17): a warning that shows on every run teaches users to ignore warnings."""

import logging

from space_clip_ros.model import load_checkpoint


def test_the_golden_checkpoint_loads_without_a_warning(golden, caplog):
    with caplog.at_level(logging.WARNING):
        model = load_checkpoint(golden.checkpoint, backbone_weights=str(golden.backbone))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert model.config.decoder.aux_heads == 3  # the heads are there, in their 1x1 form
