"""The full SCNN can fit its own training frames (a learning-capacity check of the whole cascade)."""

import lightning as L
import torch

from scnn_lightning.data.datamodule import SaliencyDataModule
from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.models.fcn import FCN
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.training.module import SCNNModule

FCN_KWARGS = dict(width=0.125, fc_channels=128, dropout=0.0)


def test_scnn_overfits_two_clips(tmp_path):
    L.seed_everything(0)
    generate_clips(tmp_path / "clips", sequences=2, frames=8, height=48, width=64, seed=11, val_fraction=0.0)
    source = [{"dataset": "davis", "root": str(tmp_path / "clips")}]
    dm = SaliencyDataModule(train=source, val=source, size=(48, 64), batch_size=4,
                            motion=MotionProvider(flow="dis", prior="magnitude", cache_dir=tmp_path / "cache"))
    module = SCNNModule(**FCN_KWARGS, optimizer="adam", lr=1e-3, weight_decay=1e-4)
    module.init_from_stage1(FCN(**FCN_KWARGS))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    module.eval()
    errors = []
    with torch.no_grad():
        for batch in dm.val_dataloader():  # the same 16 training frames, without augmentation
            errors.append((module.saliency(batch) - batch["mask"][:, 0]).abs().mean(dim=(1, 2)))
    mae = torch.cat(errors).mean().item()
    assert len(torch.cat(errors)) == 16
    assert mae < 0.05, f"SCNN did not fit its training frames: MAE {mae:.3f}"
