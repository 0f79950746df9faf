"""`python -m scnn_lightning.export`: the served network equals the LightningModule's saliency."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
import torch

from scnn_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from scnn_lightning.export import main
from scnn_lightning.inference.checkpoint import load_checkpoint, network_probability
from scnn_lightning.inference.export import example_inputs, export_network
from tests.inference_helpers import make_run


def module_saliency(loaded, inputs) -> torch.Tensor:
    image, *motion = inputs
    return network_probability(loaded.module, (image - IMAGENET_MEAN) / IMAGENET_STD,
                               dict(zip(loaded.motion_inputs, motion)))


def run_export(path, fmt, names, inputs) -> torch.Tensor:
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(*inputs)[:, 0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(names)
    return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0])[:, 0]


CASES = [("SCNN", ("image", "pt")), ("FG", ("image", "flow_gray")), ("OS", ("image",)), ("image", ("image",))]


@pytest.mark.parametrize("code, names, fmt", [(*case, "torchscript") for case in CASES]
                         + [(*case, "onnx") for case in CASES[:2]])
def test_exported_network_matches_the_module(tmp_path, code, names, fmt):
    loaded = load_checkpoint(make_run(tmp_path / "run", code, seed=3))
    path = export_network(loaded, tmp_path / f"net.{fmt}", fmt=fmt, size=(48, 64))
    for size in ((48, 64), (40, 72)):  # the traced size and another one
        inputs = example_inputs(names, size, batch=2, seed=7)
        expected = module_saliency(loaded, inputs)
        got = run_export(path, fmt, names, inputs)
        assert got.shape == expected.shape == (2, *size)
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()
    info = json.loads((tmp_path / f"net.{fmt}.json").read_text())
    assert list(info["inputs"]) == list(names) and info["variant"] == code


def test_cli_writes_the_file_and_rejects_a_foreign_checkpoint(tmp_path, capsys):
    ckpt = make_run(tmp_path / "run", "OT")
    assert main(["--ckpt", str(ckpt), "--out", str(tmp_path / "ot.pt"), "--size", "32x48"]) == 0
    served = torch.jit.load(str(tmp_path / "ot.pt"))
    assert served(*example_inputs(("image", "pt"), (32, 48))).shape == (1, 1, 32, 48)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert main(["--ckpt", str(foreign), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(foreign) in err[0] and not (tmp_path / "x.pt").exists()


def test_bad_output_paths_and_unreadable_checkpoints_are_one_line(tmp_path, capsys):
    ckpt = make_run(tmp_path / "run", "OS")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    not_a_ckpt = tmp_path / "photo.ckpt"
    not_a_ckpt.write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not a checkpoint")
    for args, named in (([str(ckpt), str(tmp_path)], tmp_path),  # --out is a folder
                        ([str(not_a_ckpt), str(a_file / "net.pt")], a_file / "net.pt"),  # checked before the ckpt
                        ([str(not_a_ckpt), str(tmp_path / "net.pt")], not_a_ckpt)):
        assert main(["--ckpt", args[0], "--out", args[1]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {named}: ") and "weights_only" not in err[0], err
    assert not (tmp_path / "net.pt").exists()
