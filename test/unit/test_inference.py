"""DepthEstimator: the numpy-in, metres-out contract the node and CLI rely on."""

import numpy as np
import pytest
import torch

from space_clip_ros.inference import UNTRAINED_WARNING, DepthEstimator, TorchEstimator
from space_clip_ros.model import build_model, save_checkpoint
from testing.tiny import tiny_config

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    return TorchEstimator(build_model(tiny_config()), device="cpu")


@pytest.fixture()
def image():
    return np.random.default_rng(0).integers(0, 256, (48, 160, 3), dtype=np.uint8)


def test_single_image_gives_float32_depth_at_input_resolution(estimator, image):
    depth = estimator.predict(image)
    assert depth.shape == (48, 160) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth > 0).all()


def test_batch_equals_single_images(estimator, image):
    other = image[::-1].copy()
    batch = estimator.predict(np.stack([image, other]))
    assert batch.shape == (2, 48, 160)
    np.testing.assert_allclose(batch[0], estimator.predict(image), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch[1], estimator.predict(other), rtol=1e-5, atol=1e-5)


def test_frames_of_different_sizes_in_one_forward_equal_each_inferred_alone(estimator):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((48, 160), (33, 40))]
    sizes = [(24, 80), (33, 40)]
    orders = ["rgb", "bgr"]
    together = estimator.infer_frames(
        [(estimator.upload(i)[0], o, s, None) for i, o, s in zip(images, orders, sizes)]
    )
    for image, order, size, depth in zip(images, orders, sizes, together):
        alone = estimator.infer(estimator.upload(image), order, size)[0]
        assert depth.shape == size
        np.testing.assert_allclose(depth.numpy(), alone.numpy(), rtol=1e-5, atol=1e-5)


def test_same_input_same_output(estimator, image):
    assert np.array_equal(estimator.predict(image), estimator.predict(image))


def test_bgr_order_is_honoured(estimator, image):
    np.testing.assert_array_equal(
        estimator.predict(image[..., ::-1].copy(), color_order="bgr"), estimator.predict(image)
    )
    assert not np.array_equal(
        estimator.predict(image, color_order="bgr"), estimator.predict(image)
    )


def test_non_contiguous_views_are_accepted(estimator, image):
    view = np.zeros((96, 160, 3), np.uint8)[::2]
    view[:] = image
    np.testing.assert_array_equal(estimator.predict(view), estimator.predict(image))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((48, 160, 3), np.float32), "uint8"),
        (np.zeros((48, 160), np.uint8), "HxWx3"),
        (np.zeros((48, 160, 4), np.uint8), "HxWx3"),
        (np.zeros((0, 160, 3), np.uint8), "empty"),
        (np.zeros((2, 1, 48, 160, 3), np.uint8), "HxWx3"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_invalid_input_is_a_clear_value_error(estimator, bad, match):
    with pytest.raises(ValueError, match=match):
        estimator.predict(bad)


def test_invalid_options():
    model = build_model(tiny_config())
    with pytest.raises(ValueError, match="precision"):
        TorchEstimator(model, device="cpu", precision="int8")
    with pytest.raises(ValueError, match="unknown device"):
        TorchEstimator(model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TorchEstimator(model, device="cuda")
    with pytest.raises(ValueError, match="color_order"):
        TorchEstimator(model, device="cpu").predict(
            np.zeros((8, 8, 3), np.uint8), color_order="rgba"
        )


def test_bf16_autocast_runs_close_to_fp32(image):
    model = build_model(tiny_config())
    fp32 = TorchEstimator(model, device="cpu").predict(image)
    bf16 = TorchEstimator(model, device="cpu", precision="bf16").predict(image)
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - fp32).max() / np.abs(fp32).max() < 0.1


def test_from_checkpoint_matches_model(tmp_path, image):
    model = build_model(tiny_config())
    save_checkpoint(model, tmp_path / "ck")
    loaded = DepthEstimator.from_checkpoint(tmp_path / "ck", device="cpu")
    assert loaded.trained
    np.testing.assert_array_equal(
        loaded.predict(image), TorchEstimator(model, device="cpu").predict(image)
    )


def test_no_checkpoint_runs_untrained_default_loudly(caplog, image, monkeypatch):
    from space_clip_ros.model import backbone

    built = []
    build = backbone.OpenClipTower.build
    monkeypatch.setattr(
        backbone.OpenClipTower, "build", lambda *a, **k: built.append(1) or build(*a, **k)
    )
    with caplog.at_level("WARNING"):
        est = DepthEstimator.from_checkpoint(None, device="cpu")
    assert built == [1]  # offline: the weights fail first, then the ViT is built once
    assert not est.trained
    assert UNTRAINED_WARNING in caplog.text
    assert "backbone is random as well" in caplog.text  # offline: no CLIP weights either
    assert est.input_size == (224, 224)
    est.warmup(32, 96, iterations=1)
    assert est.predict(image).shape == (48, 160)


def test_modules_never_fetch_weights_the_factory_resolves_them_first(monkeypatch):
    """Building an nn.Module never reaches for the network; build_model resolves, then builds."""
    from space_clip_ros.model import BackboneConfig, ClipVisionBackbone, backbone
    from testing.tiny import tiny_config

    def no_fetch(tag_cfg):
        raise AssertionError("a module constructor fetched weights")

    monkeypatch.setattr(backbone, "_fetch_pretrained", no_fetch)
    ClipVisionBackbone(BackboneConfig())  # ViT-B/16, tag 'openai': built, nothing fetched
    calls = []
    monkeypatch.setattr(backbone, "_fetch_pretrained", lambda cfg: calls.append(1) or 1 / 0)
    with pytest.raises(backbone.BackboneWeightsError, match="could not fetch"):
        backbone.resolve_backbone_weights(BackboneConfig())
    assert calls == [1]
    assert build_model(tiny_config()).backbone.width > 0  # pretrained null: nothing to fetch


def test_golden_checkpoint_reproduces_the_committed_depth(golden):
    """Checkpoint format and numbers: the committed tiny checkpoint, fp32 on the CPU."""
    assert golden.depth.shape == golden.image.shape[:2] == (64, 96)
    assert golden.depth.std() > 1.0  # a depth that varies: drift cannot hide in a flat output
    estimator = DepthEstimator.from_checkpoint(
        golden.checkpoint, device="cpu", precision="fp32", backbone_weights=str(golden.backbone)
    )
    assert estimator.trained
    golden.assert_matches(estimator.predict(golden.image))
