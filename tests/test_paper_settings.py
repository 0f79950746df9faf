"""The paper's settings as docs/training.md gives them: each stage's module gets the decay that matches its
learning-rate translation, VGG16's dropout, and the paper's FCN2 initialisation."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from omegaconf import open_dict

from experiments.run import module_kwargs
from tests.test_training_data import PAPER_ROOTS, compose_plain

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
PAPER_STAGE2 = (1e-10, 0.005)  # Caffe's stage-2 learning rate and weight decay (§IV-B)


def documented_overrides() -> list[str]:
    """The overrides of the command under "## The paper's settings"."""
    section = DOC.read_text().split("## The paper's settings", 1)[1]
    command = re.search(r"python -m experiments\.run (.+?)\n\n", section, re.S).group(1)
    return [a for a in shlex.split(command.replace("\\\n", " ")) if a not in ("trainer=gpu",)]


def test_documented_paper_command_decays_as_the_paper_per_step():
    overrides = [o for o in documented_overrides() if not o.startswith("model.backbone.pretrained")]
    cfg = compose_plain([*overrides, *PAPER_ROOTS])
    out = Path("/tmp/unused")
    stage1 = module_kwargs(cfg, out, cfg.stage1)
    stage2 = module_kwargs(cfg, out, cfg.stage2)
    assert (stage1["lr"], stage1["weight_decay"]) == (1e-2, 0.005)  # the paper's stage-1 pair, kept
    # SGD shrinks a weight by lr * weight_decay per step: the same as Caffe's stage 2 (a 4e5-times larger
    # learning rate for the mean loss needs a 4e5-times smaller decay)
    assert stage2["lr"] * stage2["weight_decay"] == pytest.approx(PAPER_STAGE2[0] * PAPER_STAGE2[1], rel=1e-6)
    for kwargs in (stage1, stage2):
        assert kwargs["optimizer"] == "sgd" and kwargs["momentum"] == 0.9 and kwargs["dropout"] == 0.5
        assert kwargs["fcn2_init"] == "xavier" and kwargs["width"] == 1.0
        assert (kwargs["schedule"], kwargs["warmup_steps"]) == ("constant", 0)  # the paper's fixed rate
    assert any(o.startswith("model.backbone.pretrained=") for o in documented_overrides())


def test_stage_decay_falls_back_to_the_model_and_old_configs_still_build():
    cfg = compose_plain([])
    assert module_kwargs(cfg, Path("/tmp/unused"), cfg.stage2)["weight_decay"] == cfg.model.weight_decay
    with open_dict(cfg):  # a run saved before fc6 / fcn2_init / the schedules existed
        del cfg.model.fc6
        del cfg.model.fcn2_init
        for key in ("schedule", "warmup_steps", "weight_decay"):
            del cfg.stage2[key]
    kwargs = module_kwargs(cfg, Path("/tmp/unused"), cfg.stage2)
    assert (kwargs["fc6"], kwargs["fcn2_init"]) == ("center3x3_d4", "copy")
    assert (kwargs["schedule"], kwargs["warmup_steps"], kwargs["weight_decay"]) == ("constant", 0, cfg.model.weight_decay)
