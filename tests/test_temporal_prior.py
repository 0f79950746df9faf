import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scnn_lightning.data.io import read_frame
from scnn_lightning.errors import DataError
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import RegionClassifier, train_region_classifier
from scnn_lightning.motion.flow import flow_for_frame
from scnn_lightning.motion.magnitude import magnitude_prior
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.motion.regions import RegionFeatureExtractor, region_labels
from scnn_lightning.motion.temporal_prior import fuse_levels_eq6, superpixel_prior

sys.path.insert(0, str(Path(__file__).parent))
from motion_clip import make_clip, make_index  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained on two clips (random backbone weights) and an unseen test clip."""
    root = tmp_path_factory.mktemp("motion")
    torch.manual_seed(0)
    index = make_index(root / "train", ["a", "b"], frames=4)
    clf = train_region_classifier(index, backbone=VGG16Backbone(width=0.25), out=root / "clf.pt")
    test = make_clip(root / "test", "c", frames=4, seed=7)
    return root / "clf.pt", clf, test


def test_eq6_is_the_mean_of_painted_levels():
    fine = np.array([[0, 1], [2, 3]])
    coarse = np.array([[0, 0], [1, 1]])
    pt = fuse_levels_eq6([fine, coarse], [np.array([0.0, 0.2, 0.4, 0.6]), np.array([1.0, 0.0])])
    np.testing.assert_allclose(pt, [[0.5, 0.6], [0.2, 0.3]], atol=1e-6)
    with pytest.raises(ValueError):
        fuse_levels_eq6([fine], [])


def test_region_labels_majority_overlap():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])  # region 0: 3/4 foreground, region 1: 1/4
    np.testing.assert_array_equal(region_labels(labels, mask), [1, 0])


def test_region_features_shape():
    ex = RegionFeatureExtractor.from_backbone(VGG16Backbone(width=0.125), depth=3)
    img = np.random.default_rng(0).integers(0, 256, (60, 90, 3), np.uint8)
    flow = np.zeros((60, 90, 2), np.float32)
    flow[20:40, 30:50] = (3, 0)
    regions = ex.describe(img, flow)
    assert len(regions.labels) == len(regions.features) == 3
    channels = VGG16Backbone(width=0.125).block_channels[2]
    for lab, f in zip(regions.labels, regions.features):
        assert f.shape == (lab.max() + 1, 3 * channels + 7) and np.isfinite(f).all()


def _margins(prior_fn, seq, discs, distractors):
    inside, distr = [], []
    for i in range(len(seq.frames)):
        pt = prior_fn(i)
        assert pt.dtype == np.float32 and pt.shape == discs[i].shape
        assert np.isfinite(pt).all() and pt.min() >= 0 and pt.max() <= 1
        inside.append(pt[discs[i]].mean())
        distr.append(pt[distractors[i]].mean())
    return np.array(inside), np.array(distr)


def test_magnitude_prior_prefers_moving_disc(tmp_path):
    seq, discs, distractors = make_clip(tmp_path, "clip", frames=4, seed=3)
    inside, distr = _margins(lambda i: magnitude_prior(flow_for_frame(seq, i)), seq, discs, distractors)
    # Measured: disc 0.84–0.90, distractor < 0.004 (it moves with the camera pan).
    assert (inside - distr).min() > 0.5, (inside, distr)


def test_superpixel_prior_prefers_moving_disc(trained):
    _, clf, (seq, discs, distractors) = trained
    inside, distr = _margins(lambda i: superpixel_prior(read_frame(seq.frames[i]), flow_for_frame(seq, i), clf),
                             seq, discs, distractors)
    # Measured on this unseen clip: disc 0.77–0.93, distractor < 0.02.
    assert (inside - distr).min() > 0.5, (inside, distr)


def test_classifier_file_round_trip_and_corruption(trained, tmp_path):
    path, clf, _ = trained
    loaded = RegionClassifier.load(path)
    assert loaded.digest == clf.digest
    feats = np.random.default_rng(0).normal(size=(5, len(clf.transform.mean))).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(feats), clf.predict(feats), atol=1e-6)
    payload = torch.load(path, weights_only=True)
    payload["feature_mean"] = payload["feature_mean"] + 1
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(DataError, match="digest"):
        RegionClassifier.load(tmp_path / "edited.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pt"):
        RegionClassifier.load(tmp_path / "junk.pt")


def test_provider_needs_classifier_for_superpixel_prior(trained):
    with pytest.raises(DataError, match="train_classifier"):
        MotionProvider(prior="superpixel")
    with pytest.raises(DataError, match="train_classifier"):
        MotionProvider(prior="superpixel", classifier="/nonexistent/clf.pt")
    with pytest.raises(TypeError):
        MotionProvider(prior="magnitude", bogus=1)
    path, clf, (seq, discs, _) = trained
    maps = MotionProvider(prior="superpixel", classifier=path).maps(seq, 1)
    assert maps.pt.shape == maps.flow_gray.shape == discs[1].shape
    assert maps.pt[discs[1]].mean() > maps.pt[~discs[1]].mean() + 0.5


def test_saving_a_classifier_twice_gives_the_same_bytes(tmp_path):
    """A resumed or repeated run must be able to compare classifier files byte for byte."""
    torch.manual_seed(0)
    clf = RegionClassifier.untrained(VGG16Backbone(width=0.125))
    clf.save(tmp_path / "a.pt")
    clf.save(tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert RegionClassifier.load(tmp_path / "b.pt").flow == "dis"
