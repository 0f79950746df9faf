"""Export the inference network: `python -m scnn_lightning.export --ckpt CKPT --out FILE [--format torchscript|onnx]`.

The file holds the whole network of the checkpoint's variant (FCN1 and FCN2 for a cascade) and serves
without this package (`torch.jit.load` or `onnxruntime`); inputs and output are described in
`inference/export.py` and in `FILE.json` written beside it. `--size HxW` is the size traced with
(default: the run's training size, else 256x448); both formats accept other sizes at run time.
Bad input (an unreadable or foreign checkpoint, an --out that cannot be written) ends with one line on
stderr and exit status 2, the output path checked before the checkpoint is read.
"""

from __future__ import annotations

import argparse
import sys

from scnn_lightning.errors import DataError, report_failure, writable_file
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
        writable_file(args.out)
        loaded = load_checkpoint(args.ckpt)
        size = args.size or loaded.trained_size or (256, 448)
        path = export_network(loaded, args.out, fmt=args.format, size=size)
    except (DataError, OSError) as error:
        return report_failure(error)
    inputs = ", ".join(("image",) + loaded.motion_inputs)
    print(f"{loaded.code} network exported to {path} ({args.format}, inputs: {inputs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
