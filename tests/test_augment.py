"""Training-sample augmentation (scnn_lightning/data/augment.py): the mask and the prior maps stay aligned with the
frames pixel for pixel, a seed fixes the sample, the off switch leaves it alone, and config errors name the key.

The test frames are grey stripes at two levels (0.25, 0.75) across one axis: the mask is the frame above 0.5 and
the priors are the frame's level and its complement. A bilinear step crosses 0.5 exactly where a centred nearest
neighbour switches sides, so the augmented mask must equal the augmented prior above 0.5 at every pixel but those
sampled exactly halfway between two stripes (a tie either side may take). Grey frames also keep their order under
colour jitter (saturation and hue leave grey alone; brightness and contrast are increasing), so after jitter the
mask must still split the frame by a threshold.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from scnn_lightning.data.augment import SampleAugment, parse_augment
from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.synthetic import generate_clips

SIZE = (32, 48)
FRAME = (50, 50)  # square, as many still images are: the crop's ratio is relative to the frame's own aspect
CROP = {"scale": [0.35, 1.0], "ratio": [0.8, 1.25]}
FLIP = {"flip": True}
JITTER = {"color_jitter": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1}}
EVERYTHING = {**CROP, **FLIP, **JITTER}
SEEDS = range(6)


def striped(axis: int, seed: int = 0, size: tuple[int, int] = FRAME) -> dict:
    """A sample of grey frames striped across `axis` (1: columns vary, 0: rows vary), its mask and priors."""
    rng = np.random.default_rng(seed)
    length = size[axis]
    levels = np.where(rng.random(length // 3 + 1) < 0.5, 0.25, 0.75).repeat(3)[:length].astype(np.float32)
    grey = np.broadcast_to(levels if axis == 1 else levels[:, None], size).copy()
    rgb = np.repeat(np.round(grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    return {"image": rgb, "next_image": rgb.copy(), "mask": (grey > 0.5).astype(np.float32), "pt": grey,
            "flow_gray": 1.0 - grey}


def augmenter(config: dict) -> SampleAugment:
    return SampleAugment(parse_augment(config), SIZE)


def decided(out: dict, margin: float = 1e-4) -> np.ndarray:
    """The pixels not sampled (about) halfway between two stripes."""
    return np.abs(out["pt"] - 0.5) > margin


def assert_maps_aligned(out: dict, shape: tuple[int, int]) -> None:
    """Mask and priors at every pixel where the frame puts them."""
    assert out["mask"].shape == out["pt"].shape == out["flow_gray"].shape == shape
    assert out["image"].shape == out["next_image"].shape == (*shape, 3)
    sure = decided(out)
    assert np.array_equal(out["mask"][sure], (out["pt"][sure] > 0.5).astype(np.float32))
    np.testing.assert_allclose(out["pt"] + out["flow_gray"], 1.0, atol=1e-6)
    assert np.array_equal(out["next_image"], out["image"])


def assert_mask_splits_the_frame(out: dict) -> None:
    """The frame is above some level exactly where the mask is 1 (uint8 rounding: clear of the halfway pixels)."""
    grey, mask, sure = out["image"][..., 0].astype(int), out["mask"], decided(out, margin=0.02)
    assert grey[sure & (mask == 0)].max() < grey[sure & (mask == 1)].min()


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("config, shape", [(CROP, SIZE), (FLIP, FRAME), ({**CROP, **FLIP}, SIZE)],
                         ids=["crop", "flip", "crop+flip"])
def test_geometry_keeps_mask_and_priors_on_the_frame_pixel_for_pixel(config, shape, axis):
    aug = augmenter(config)
    sample = striped(axis)
    for seed in SEEDS:
        out = aug(sample, seed=seed)
        assert_maps_aligned(out, shape)
        np.testing.assert_allclose(out["image"][..., 0] / 255, out["pt"], atol=2 / 255)
        assert_mask_splits_the_frame(out)


def test_the_crop_moves_the_frame_and_at_full_scale_is_the_whole_frame_as_test_time_sees_it():
    sample = striped(axis=1)
    outs = [augmenter(CROP)(sample, seed=seed)["pt"] for seed in SEEDS]
    assert len({out.tobytes() for out in outs}) == len(outs)
    whole = augmenter({"scale": [1.0, 1.0]})(sample, seed=0)["pt"]  # ratio 1: the square frame's own aspect
    assert np.array_equal(whole, cv2.resize(sample["pt"], SIZE[::-1], interpolation=cv2.INTER_LINEAR))


def test_flip_mirrors_some_samples_and_keeps_the_others():
    aug = augmenter(FLIP)
    sample = striped(axis=1)
    outs = [aug(sample, seed=seed)["pt"] for seed in range(8)]
    flipped = [np.array_equal(out, sample["pt"][:, ::-1]) for out in outs]
    kept = [np.array_equal(out, sample["pt"]) for out in outs]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_colour_jitter_changes_the_frames_alike_and_nothing_else():
    aug = augmenter(JITTER)
    assert aug.geometry is None
    sample = striped(axis=1)
    for seed in SEEDS:
        out = aug(sample, seed=seed)
        assert all(np.array_equal(out[key], sample[key]) for key in ("mask", "pt", "flow_gray"))
        assert np.array_equal(out["next_image"], out["image"])  # a frame and its partner with the same factors
        assert_mask_splits_the_frame(out)
    assert any(not np.array_equal(aug(sample, seed=seed)["image"], sample["image"]) for seed in SEEDS)


def test_colour_jitter_gives_a_partner_frame_its_frame_s_factors():
    """Partner frames that differ get the same draw: jittering the partner as the frame reproduces it."""
    aug = augmenter(JITTER)
    colourful = np.random.default_rng(1).integers(0, 256, (*FRAME, 3), dtype=np.uint8)
    sample = {**striped(axis=1), "next_image": colourful}
    for seed in SEEDS:
        alone = aug({**sample, "image": colourful}, seed=seed)
        assert np.array_equal(aug(sample, seed=seed)["next_image"], alone["image"])


@pytest.mark.parametrize("axis", [0, 1])
def test_whole_pipeline_keeps_everything_aligned(axis):
    aug, geometry_only = augmenter(EVERYTHING), augmenter({**CROP, **FLIP})
    sample = striped(axis)
    for seed in SEEDS:
        out = aug(sample, seed=seed)
        assert_maps_aligned(out, SIZE)
        assert_mask_splits_the_frame(out)
        # The jitter draws after the geometry, so the same seed without it moves every map the same way.
        moved = geometry_only(sample, seed=seed)
        assert all(np.array_equal(out[key], moved[key]) for key in ("mask", "pt", "flow_gray"))


def test_a_soft_mask_keeps_its_values():
    aug = augmenter(EVERYTHING)
    sample = striped(axis=1)
    sample["mask"] = np.where(sample["mask"] > 0, 0.7, 0.3).astype(np.float32)  # confidences, not 0/1
    for seed in SEEDS:
        out = aug(sample, seed=seed)
        assert np.array_equal(np.unique(out["mask"]), np.unique(sample["mask"]))  # exactly 0.3 and 0.7


def test_the_same_seed_gives_the_same_sample_and_another_seed_another():
    aug = augmenter(EVERYTHING)
    sample = striped(axis=1)
    first, again, other = aug(sample, seed=11), aug(sample, seed=11), aug(sample, seed=12)
    assert all(np.array_equal(first[key], again[key]) for key in sample)
    assert not np.array_equal(first["image"], other["image"])


def test_augmenting_leaves_the_global_random_states_alone():
    aug = augmenter(EVERYTHING)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    aug(striped(axis=1), seed=5)
    assert random.getstate() == states[0] and torch.equal(torch.get_rng_state(), states[2])
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), states[1]))


def test_a_map_the_augmentation_does_not_know_is_an_error():
    with pytest.raises(ValueError, match="depth"):
        augmenter(EVERYTHING)({**striped(axis=1), "depth": np.zeros(FRAME, np.float32)}, seed=0)


@pytest.mark.parametrize("off", [None, False, {}, {"flip": False}, {"scale": None, "color_jitter": None}])
def test_off_switches(off):
    assert parse_augment(off) is None


def test_the_old_form_reads_as_a_crop_at_the_frame_aspect():
    spec = parse_augment({"flip": True, "max_scale": 1.25})
    assert spec.flip and spec.scale == (0.64, 1.0) and spec.ratio == (1.0, 1.0)
    assert parse_augment({"flip": True, "max_scale": 1.0}).scale is None


@pytest.mark.parametrize("config, key", [
    ({"flip": True, "rotate": 10}, "data.augment.rotate"),
    ({"flip": "yes"}, "data.augment.flip"),
    ({"scale": [0.0, 1.0]}, "data.augment.scale"),
    ({"scale": [0.8, 0.5]}, "data.augment.scale"),
    ({"scale": [0.5, 1.2]}, "data.augment.scale"),
    ({"scale": 0.5}, "data.augment.scale"),
    ({"scale": [0.5, 1.0], "ratio": [1.2, 0.8]}, "data.augment.ratio"),
    ({"ratio": [0.8, 1.2]}, "data.augment.ratio"),
    ({"color_jitter": {"brightness": 0.2, "gamma": 0.1}}, "data.augment.color_jitter.gamma"),
    ({"color_jitter": {"hue": 0.7}}, "data.augment.color_jitter.hue"),
    ({"color_jitter": {"contrast": -0.1}}, "data.augment.color_jitter.contrast"),
    ({"color_jitter": 0.2}, "data.augment.color_jitter"),
    ({"flip": True, "max_scale": 1.2, "scale": [0.5, 1.0]}, "data.augment.scale"),
    ({"flip": True, "max_scale": 0.8}, "data.augment.max_scale"),
    (True, "data.augment"),
])
def test_config_errors_name_the_key(config, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        parse_augment(config)


# -- in the datamodule ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return generate_clips(root, sequences=2, frames=4, height=40, width=56, seed=3, val_fraction=0.0)


def datamodule(clips, augment, seed: int = 7) -> SaliencyDataModule:
    dm = SaliencyDataModule(train=[{"dataset": "davis", "root": str(clips)}], val_fraction=0.0, size=SIZE,
                            batch_size=4, augment=augment, seed=seed)
    dm.setup("fit")
    return dm


def first_batch(dm: SaliencyDataModule, *, epoch: int = 0, num_workers: int = 0) -> dict:
    dataset = dm.dataset(dm.train_entries, train=True, epoch=epoch)
    return next(iter(torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=num_workers)))


def test_training_frames_are_augmented_to_size_and_evaluation_frames_are_not(clips):
    dm = datamodule(clips, EVERYTHING)
    train, evaluation = first_batch(dm), next(iter(dm.loader(dm.dataset(dm.train_entries), shuffle=False)))
    assert all(train[key].shape[-2:] == SIZE for key in ("image", "next_image", "mask"))
    assert not torch.equal(train["image"], evaluation["image"])
    assert train["name"] == evaluation["name"]


def test_the_draw_follows_seed_epoch_and_frame_not_the_loader_workers(clips):
    dm = datamodule(clips, EVERYTHING)
    reference = first_batch(dm)
    assert all(torch.equal(reference[key], first_batch(dm, num_workers=1)[key]) for key in ("image", "mask"))
    assert torch.equal(reference["image"], first_batch(datamodule(clips, EVERYTHING))["image"])
    assert not torch.equal(reference["image"], first_batch(dm, epoch=1)["image"])
    assert not torch.equal(reference["image"], first_batch(datamodule(clips, EVERYTHING, seed=8))["image"])
    fresh = dm.dataset(dm.train_entries, train=True)  # a frame's draw does not depend on the frames read before
    assert torch.equal(fresh[2]["image"], reference["image"][2])


def test_switched_off_the_training_frames_are_the_resized_frames(clips):
    dm = datamodule(clips, None)
    assert dm.augmenter is None
    train, evaluation = first_batch(dm), next(iter(dm.loader(dm.dataset(dm.train_entries), shuffle=False)))
    assert all(torch.equal(train[key], evaluation[key]) for key in ("image", "next_image"))
    assert train["image"].shape[-2:] == SIZE
