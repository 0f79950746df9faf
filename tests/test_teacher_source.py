"""Stage 1 on video frames: a DAVIS source read as still images keeps ground truth within its label budget, the
other frames learn from a teacher's maps (soft targets), and the held-out sequences reach no stage."""

import numpy as np
import pytest

from scnn_lightning.data.datamodule import (LABEL_MANUAL, LABEL_TEACHER, SaliencyDataModule, SourceSpec,
                                            load_sequences)
from scnn_lightning.data.readers import load_index
from scnn_lightning.errors import DataError
from tests.davis_fixture import saliency_folders, tiny_davis

GREY = 77  # the teacher's map: one grey level, so the soft target is easy to recognise


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    davis = tiny_davis(root / "davis", sequences=5, frames=6, val_fraction=0.2)
    maps = saliency_folders(root / "maps", davis, {"flat": lambda f, m, s: np.full(m.shape, GREY, np.uint8)})
    return davis, maps / "flat"


def source(davis, teacher, **extra):
    return {"dataset": "davis", "root": str(davis), "split": "train", "as_images": True, "label_every": 3,
            "teacher": str(teacher), **extra}


def test_budgeted_frames_keep_ground_truth_and_the_rest_learn_from_the_teacher(layout):
    davis, teacher = layout
    held_out = load_index("davis", davis, "train").sequences[0].name
    dm = SaliencyDataModule(train=[source(davis, teacher)], size=(24, 32), val_fraction=0.0, val_sequences=[held_out])
    dm.setup()
    assert {seq.name for seq, _ in dm.train_entries}.isdisjoint({held_out}) and not dm.val_entries
    assert len(dm.active_train_entries()) == len(dm.train_entries)  # every frame teaches something
    for seq, index in dm.train_entries:
        mask, kind = dm.train_label(seq, index, (48, 64))
        if index % 3 == 0:  # frames 0, 3: the budget's ground truth
            assert kind == LABEL_MANUAL and set(np.unique(mask)) <= {0, 1}
        else:
            assert kind == LABEL_TEACHER and np.allclose(mask, GREY / 255)


def test_a_missing_teacher_map_is_named_before_training(layout, tmp_path):
    davis, _ = layout
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no teacher map"):
        load_sequences([source(davis, tmp_path / "empty")])


def test_teacher_and_budget_need_a_source_read_as_images(layout):
    davis, teacher = layout
    with pytest.raises(ValueError, match="as_images"):
        SourceSpec.parse(source(davis, teacher, as_images=False))
