"""Model family on 64×64 tensors: shapes, gradients, channel counts, Eq. 2 initialisation, VGG16 loading,
the paper-deviation options (fc6 layout, FCN2's conv1_1) and checkpoints written before those options."""

import math

import pytest
import torch

from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import load_checkpoint, save_inference_checkpoint
from scnn_lightning.models.cascade import Cascade, spatiotemporal_prior
from scnn_lightning.models.fcn import FCN, expand_first_conv
from scnn_lightning.models.losses import balanced_bce
from scnn_lightning.models.variants import VARIANTS, get_variant
from scnn_lightning.models.vgg import FC6_LAYOUTS, VGG16Backbone, load_imagenet_vgg16
from scnn_lightning.training.checkpoints import load_fcn
from scnn_lightning.training.module import ImageStageModule, create_module

TINY = dict(width=0.0625, fc_channels=64, dropout=0.0)
EXPECTED_CHANNELS = {"sFCN": 3, "FG": 5, "FP": 5, "OS": 4, "OT": 4, "NA": 4, "SCNN": 4}


def batch(b=2, size=64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, 3, size, size, generator=g), torch.rand(b, 1, size, size, generator=g),
            torch.rand(b, 1, size, size, generator=g))


@pytest.mark.parametrize("upsample", ["last2", "all"])
def test_fcn_output_is_full_resolution_logits(upsample):
    fcn = FCN(in_channels=3, upsample=upsample, **TINY)
    x = torch.randn(2, 3, 64, 80)
    assert fcn(x).shape == (2, 1, 64, 80)
    assert set(fcn.score) == ({"4", "5"} if upsample == "last2" else {str(i) for i in range(6)})


def test_backbone_output_stride_is_8_and_blocks_are_dilated():
    bb = VGG16Backbone(**TINY)
    blocks = bb(torch.randn(1, 3, 64, 64))
    assert [b.shape[-1] for b in blocks] == [64, 32, 16, 8, 8, 8]  # pool4 and pool5 removed
    assert bb.features[24].dilation == (2, 2) and bb.fc6.dilation == (4, 4)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in list(bb.features)[23:])


@pytest.mark.parametrize("code", list(VARIANTS))
def test_variant_channels_shapes_and_gradients(code):
    variant = get_variant(code)
    assert variant.in_channels == EXPECTED_CHANNELS[code]
    model = Cascade(variant, **TINY)
    assert model.fcn2.in_channels == EXPECTED_CHANNELS[code]
    assert (model.fcn1 is not None) == (code in {"FG", "FP", "OS", "NA", "SCNN"})
    image, pt, flow_gray = batch()
    logits, maps = model(image, pt, flow_gray)
    assert logits.shape == (2, 1, 64, 64)
    assert set(maps) >= set(variant.priors)
    loss = balanced_bce(logits, (pt > 0.5).float(), torch.ones(2, dtype=torch.bool))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient reached {missing}"


def test_spatiotemporal_prior_is_elementwise_product():
    ps, pt = torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    assert torch.equal(spatiotemporal_prior(ps, pt), ps * pt)


def test_cascade_from_stage1_copies_fcn1_and_rgb_kernels():
    stage1 = FCN(in_channels=3, **TINY)
    model = Cascade.from_stage1(get_variant("FP"), stage1, **TINY)
    for name, value in stage1.state_dict().items():
        assert torch.equal(model.fcn1.state_dict()[name], value), name
    w1 = stage1.backbone.first_conv.weight
    w2 = model.fcn2.backbone.first_conv.weight
    assert w2.shape[1] == 5 and torch.equal(w2[:, :3], w1)
    assert w2[:, 3:].abs().sum() > 0  # Xavier, not zeros
    assert torch.equal(model.fcn2.backbone.fc7.weight, stage1.backbone.fc7.weight)


def test_expand_first_conv_rejects_non_rgb_source():
    with pytest.raises(AssertionError):
        expand_first_conv(FCN(in_channels=4, **TINY), FCN(in_channels=5, **TINY))


def torchvision_vgg16_state(fc=4096):
    """A state dict with torchvision's VGG16 names and shapes (random values)."""
    state, prev = {}, 3
    for idx, ch in zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
                       [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]):
        state[f"features.{idx}.weight"] = torch.randn(ch, prev, 3, 3)
        state[f"features.{idx}.bias"] = torch.randn(ch)
        prev = ch
    state["classifier.0.weight"] = torch.randn(fc, 512 * 7 * 7)
    state["classifier.0.bias"] = torch.randn(fc)
    state["classifier.3.weight"] = torch.randn(fc, fc)
    state["classifier.3.bias"] = torch.randn(fc)
    state["classifier.6.weight"] = torch.randn(1000, fc)
    state["classifier.6.bias"] = torch.randn(1000)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(torchvision_vgg16_state(), path)
    return path


@pytest.mark.parametrize(("fc6", "taps", "dilation"), [("center3x3_d4", [2, 3, 4], 4),  # the central 3×3
                                                        ("largefov_d12", [0, 3, 6], 12),  # DeepLab-LargeFOV
                                                        ("center1x1", [3], 1)])  # the centre tap
def test_imagenet_checkpoint_sets_every_backbone_parameter(vgg_file, fc6, taps, dilation):
    bb = VGG16Backbone(fc_channels=1024, fc6=fc6)
    taken = load_imagenet_vgg16(bb, vgg_file)
    assert taken == sorted(bb.state_dict())
    state = torch.load(vgg_file, weights_only=True)
    for idx in (0, 10, 28):
        assert torch.equal(bb.features[idx].weight, state[f"features.{idx}.weight"])
    kernel = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
    k = len(taps)
    assert bb.fc6.weight.shape == (1024, 512, k, k)
    for f in (0, 1, 1023):  # every 4th ImageNet filter, the layout's taps
        assert torch.equal(bb.fc6.weight[f], kernel[4 * f][:, taps][:, :, taps]), f
        assert bb.fc6.bias[f] == state["classifier.0.bias"][4 * f]
    assert torch.equal(bb.fc7.weight[2, 3, 0, 0], state["classifier.3.weight"][8, 12])
    assert bb.fc6.dilation == (dilation, dilation) and bb.fc6.padding == (dilation * (k // 2),) * 2


@pytest.mark.parametrize("fc6", list(FC6_LAYOUTS))
def test_each_fc6_layout_keeps_the_feature_map_size(fc6):
    fcn = FCN(in_channels=3, fc6=fc6, **TINY)
    blocks = fcn.backbone(torch.randn(1, 3, 64, 96))
    assert blocks[-1].shape[-2:] == (8, 12) and fcn(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_unknown_fc6_layout_names_the_valid_ones():
    with pytest.raises(ValueError, match="center3x3_d4, largefov_d12, center1x1"):
        VGG16Backbone(fc6="largefov", **TINY)


def test_fcn2_init_xavier_reinitialises_the_whole_first_conv():
    stage1 = FCN(in_channels=3, **TINY)
    torch.manual_seed(1)
    model = Cascade.from_stage1(get_variant("SCNN"), stage1, fcn2_init="xavier", **TINY)
    conv, src = model.fcn2.backbone.first_conv, stage1.backbone.first_conv
    assert conv.weight.shape == (4, 4, 3, 3)  # width 1/16 of 64 filters; RGB + P
    assert not torch.equal(conv.weight[:, :3], src.weight) and torch.count_nonzero(conv.bias) == 0
    fan_in, fan_out = 4 * 9, 4 * 9
    assert conv.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))  # Glorot uniform bound of the layer
    assert torch.equal(model.fcn2.backbone.features[2].weight, stage1.backbone.features[2].weight)
    copied = Cascade.from_stage1(get_variant("SCNN"), stage1, fcn2_init="copy", **TINY).fcn2.backbone.first_conv
    assert torch.equal(copied.weight[:, :3], src.weight) and torch.equal(copied.bias, src.bias)
    with pytest.raises(ValueError, match="copy, xavier"):
        Cascade.from_stage1(get_variant("SCNN"), stage1, fcn2_init="glorot", **TINY)


def test_module_options_reach_the_cascade_and_are_checked():
    stage1 = FCN(in_channels=3, fc6="largefov_d12", **TINY)
    module = create_module("OT", fc6="largefov_d12", fcn2_init="xavier", **TINY)
    module.init_from_stage1(stage1)
    fcn2 = module.model.fcn2.backbone
    assert fcn2.fc6.dilation == (12, 12) and torch.count_nonzero(fcn2.first_conv.bias) == 0
    with pytest.raises(ValueError, match="same fc6 layout"):  # same shapes: nothing else would notice
        create_module("OT", **TINY).init_from_stage1(stage1)
    with pytest.raises(ValueError, match="fcn2_init must be one of copy, xavier"):
        ImageStageModule(fcn2_init="Xavier", **TINY)


def test_checkpoints_without_the_new_hyperparameters_still_load(tmp_path):
    """Checkpoints written before `fc6`/`fcn2_init` existed load with the behaviour they were trained with."""
    stage1 = save_inference_checkpoint(ImageStageModule(**TINY), tmp_path / "stage1.ckpt")
    cascade = save_inference_checkpoint(create_module("SCNN", **TINY), tmp_path / "scnn.ckpt")
    for path in (stage1, cascade):
        ckpt = torch.load(path, weights_only=True)
        ckpt["hyper_parameters"] = {k: v for k, v in ckpt["hyper_parameters"].items() if k not in ("fc6", "fcn2_init")}
        torch.save(ckpt, path)
        assert load_fcn(path).backbone.fc6.dilation == (4, 4)
        assert load_checkpoint(path).module.hparams.fc6 == "center3x3_d4"
    largefov = save_inference_checkpoint(ImageStageModule(fc6="largefov_d12", **TINY), tmp_path / "largefov.ckpt")
    assert load_fcn(largefov).backbone.fc6.dilation == (12, 12)  # the layout travels with the checkpoint


def test_wrong_checkpoint_gives_clear_error(tmp_path, vgg_file):
    bad = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.randn(64, 3, 7, 7)}, bad)
    with pytest.raises(DataError, match=r"resnet\.pth: not a torchvision VGG16 state dict: missing classifier\.0\.weight"):
        load_imagenet_vgg16(VGG16Backbone(), bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"garbage\.pth: cannot be read as a torch state dict"):
        load_imagenet_vgg16(VGG16Backbone(), garbage)
    with pytest.raises(DataError, match="width=1.0"):
        load_imagenet_vgg16(VGG16Backbone(width=0.5), vgg_file)
    state = torchvision_vgg16_state()
    state["features.24.weight"] = torch.randn(512, 256, 3, 3)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong)
    with pytest.raises(DataError, match=r"wrong_shape\.pth: does not match VGG16: features\.24\.weight"):
        load_imagenet_vgg16(VGG16Backbone(), wrong)
    with pytest.raises(DataError, match="not found"):
        load_imagenet_vgg16(VGG16Backbone(), tmp_path / "absent.pth")
