"""Export the inference network: `python -m scnn_lightning.export --ckpt CKPT --out FILE [--format torchscript|onnx]`.

The file holds the whole network of the checkpoint's variant (FCN1 and FCN2 for a cascade) and serves
without this package (`torch.jit.load` or `onnxruntime`); inputs and output are described in
`inference/export.py` and in `FILE.json` written beside it. `--size HxW` is the size traced with
(default: the run's training size, else 256x448); both formats accept other sizes at run time.
"""

from __future__ import annotations

import argparse
import sys

from scnn_lightning.errors import DataError
from scnn_lightning.inference.checkpoint import load_checkpoint
from scnn_lightning.inference.export import FORMATS, export_network
from scnn_lightning.predict import parse_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scnn_lightning.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="a run's checkpoint (any variant, or stage 1)")
    p.add_argument("--out", required=True, help="output file (.pt for TorchScript, .onnx for ONNX)")
    p.add_argument("--format", choices=FORMATS, default="torchscript")
    p.add_argument("--size", type=parse_size, help="HxW traced with (default: training size, else 256x448)")
    args = p.parse_args(argv)
    try:
        loaded = load_checkpoint(args.ckpt)
        size = args.size or loaded.trained_size or (256, 448)
        path = export_network(loaded, args.out, fmt=args.format, size=size)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    inputs = ", ".join(("image",) + loaded.motion_inputs)
    print(f"{loaded.code} network exported to {path} ({args.format}, inputs: {inputs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
