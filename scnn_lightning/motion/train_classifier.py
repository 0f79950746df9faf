"""Train the salient-superpixel classifier of Eq. 6 (paper §III-B) on a dataset's labelled video frames.

    python -m scnn_lightning.motion.train_classifier --dataset segtrackv2 --root /data/SegTrackv2 \
        --out runs/region_classifier.pt --backbone-ckpt runs/stage1/last.ckpt

The deep region features come from the stage-1 FCN's backbone (`--backbone-ckpt`, a checkpoint read
by `scnn_lightning.training.checkpoints.load_fcn`). Without it the backbone keeps its random
initialisation, which is only meant for smoke tests: the motion statistics still train, the deep
features then carry no appearance knowledge.
"""

from __future__ import annotations

import argparse
import sys

import torch

from scnn_lightning.errors import DataError
from scnn_lightning.models.vgg import VGG16Backbone
from scnn_lightning.motion.classifier import train_region_classifier
from scnn_lightning.motion.flow import FLOW_BACKENDS
from scnn_lightning.motion.regions import DEFAULT_DEPTH


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scnn_lightning.motion.train_classifier", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="reader name, e.g. segtrackv2, fbms, davis")
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True, help="classifier file to write (atomically)")
    p.add_argument("--backbone-ckpt", help="stage-1 checkpoint whose FCN backbone gives the deep features")
    p.add_argument("--width", type=float, default=1.0, help="backbone width without --backbone-ckpt")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="VGG blocks used for the features")
    p.add_argument("--flow", default="dis", choices=FLOW_BACKENDS)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--deep-dims", type=int, default=32, help="principal components kept of the deep features")
    p.add_argument("--max-frames", type=int, help="use at most this many labelled frames (evenly spaced)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from scnn_lightning.data.readers import load_index

    torch.manual_seed(args.seed)
    try:
        if args.backbone_ckpt:
            from scnn_lightning.training.checkpoints import load_fcn

            backbone = load_fcn(args.backbone_ckpt).backbone
        else:
            print("warning: no --backbone-ckpt, deep region features come from a randomly initialised VGG16",
                  file=sys.stderr)
            backbone = VGG16Backbone(width=args.width)
        index = load_index(args.dataset, args.root, args.split)
        clf = train_region_classifier(index, backbone=backbone, out=args.out, flow=args.flow, depth=args.depth,
                                      epochs=args.epochs, deep_dims=args.deep_dims, max_frames=args.max_frames,
                                      seed=args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (digest {clf.digest[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
