"""Stage 2's FCN1 options (`stage2.fcn1`: train | frozen | supervised, `fcn1_lr_scale`, `fcn1_loss_weight`) and the
prior maps a stage-2 module scores alone (validation columns, the test `priors` block)."""

import pytest
import torch

from scnn_lightning.data.datamodule import LABEL_MANUAL
from scnn_lightning.models.losses import get_loss
from scnn_lightning.training.module import create_module

TINY = dict(width=0.0625, fc_channels=16, dropout=0.0, loss="bce_iou")


def batch(size=32):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(2, 1, size, size)
    mask[..., 8:24, 8:24] = 1.0
    return {"image": torch.randn(2, 3, size, size, generator=g), "pt": torch.rand(2, 1, size, size, generator=g),
            "mask": mask, "label_kind": torch.full((2,), LABEL_MANUAL), "labelled": torch.ones(2, dtype=torch.bool)}


def fcn1_grads(module):
    return [p.grad for p in module.model.fcn1.parameters()]


def test_frozen_fcn1_gets_no_gradient_and_is_not_optimised():
    module = create_module("SCNN", fcn1="frozen", **TINY)
    module.training_step(batch(), 0).backward()
    assert all(g is None for g in fcn1_grads(module))
    assert any(p.grad is not None for p in module.model.fcn2.parameters())
    optimised = {id(p) for group in module.parameter_groups() for p in group["params"]}
    assert not optimised & {id(p) for p in module.model.fcn1.parameters()}


def test_supervised_adds_the_loss_on_ps_and_its_gradient_reaches_fcn1():
    b = batch()
    trained = create_module("SCNN", fcn1="train", **TINY)
    supervised = create_module("SCNN", fcn1="supervised", fcn1_loss_weight=0.5, **TINY)
    supervised.load_state_dict(trained.state_dict())
    logits, maps = supervised.outputs(b)
    loss = get_loss("bce_iou")
    on_ps = loss(maps["ps_logits"], b["mask"], b["labelled"])
    total = supervised.training_step(b, 0)
    assert torch.allclose(total, trained.training_step(b, 0) + 0.5 * on_ps)
    # the Ps term alone moves FCN1 (not only through P = Ps·Pt into FCN2's loss)
    supervised.zero_grad()
    supervised.extra_loss(maps, lambda x: loss(x, b["mask"], b["labelled"])).backward()
    assert all(g is not None and g.abs().sum() > 0 for g in fcn1_grads(supervised)[-2:])
    assert all(p.grad is None for p in supervised.model.fcn2.parameters())


def test_train_mode_scales_fcn1s_rate_in_its_own_group():
    module = create_module("SCNN", fcn1="train", fcn1_lr_scale=0.1, lr=1e-3, **TINY)
    groups = module.parameter_groups()
    fcn1 = {id(p) for p in module.model.fcn1.parameters()}
    scaled = [g for g in groups if {id(p) for p in g["params"]} == fcn1]
    assert len(scaled) == 1 and scaled[0]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(module.parameters()))


def test_fcn1_options_are_checked():
    with pytest.raises(ValueError, match="train, frozen, supervised"):
        create_module("SCNN", fcn1="freeze", **TINY)
    with pytest.raises(ValueError, match=">= 0"):
        create_module("SCNN", fcn1_lr_scale=-1.0, **TINY)


@pytest.mark.parametrize("code, validated, scored", [("SCNN", ["ps", "p"], ["ps", "pt", "p"]),
                                                     ("NA", ["ps", "p"], ["ps", "pt", "p"]),
                                                     ("FP", ["ps"], ["ps", "pt"]), ("OT", [], ["pt"]),
                                                     ("sFCN", [], [])])
def test_each_variant_scores_the_priors_it_has(code, validated, scored):
    module = create_module(code, **TINY)
    assert list(module.val_prior_metrics) == validated and module.prior_names() == scored


def test_validation_logs_each_prior_alone():
    module = create_module("SCNN", **TINY)
    b = batch()
    b["pt"] = b["mask"].clone()  # Pt is the ground truth: P = Ps·Pt is zero off the object
    logged = {}
    module.log_dict = lambda values, **_: logged.update(values)
    module.validation_step(b, 0)
    module.on_validation_epoch_end()
    assert {"val/s_measure", "val/ps_s_measure", "val/p_s_measure", "val/ps_mae", "val/p_max_f"} <= set(logged)
    assert logged["val/p_mae"] < logged["val/ps_mae"]  # P keeps only the object: closer to the mask than Ps
