"""Fill the motion cache (each frame's Pt and grey flow image) of a dataset ahead of training (§III-B).

    python -m scnn_lightning.precompute --dataset davis --root /data/DAVIS --split train \
        --cache cache/motion --prior superpixel --classifier runs/region_classifier.pt --workers 2

Every entry is keyed by content (see motion/cache.py), so a second run, another variant or another
epoch reuses what exists, and a killed run resumes where it stopped: each entry is written
atomically, so nothing half-written is ever read back.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch
from tqdm import tqdm

from scnn_lightning.data.records import DatasetIndex, SequenceRef
from scnn_lightning.errors import DataError
from scnn_lightning.motion.flow import FLOW_BACKENDS
from scnn_lightning.motion.provider import PRIORS, MotionProvider

_worker_provider: MotionProvider | None = None


def _init_worker(provider_kwargs: dict) -> None:
    global _worker_provider
    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    _worker_provider = MotionProvider(**provider_kwargs)


def _fill(provider: MotionProvider, seq: SequenceRef, index: int) -> bool:
    """Make sure frame `index` is cached; True when it had to be computed."""
    misses = provider.stats["misses"]
    provider.maps(seq, index)
    return provider.stats["misses"] > misses


def _fill_in_worker(seq: SequenceRef, index: int) -> bool:
    return _fill(_worker_provider, seq, index)


def precompute(index: DatasetIndex, provider_kwargs: dict, *, workers: int = 1) -> dict[str, int]:
    """Cache the motion maps of every frame of `index`; returns {"computed": n, "reused": m}."""
    provider = MotionProvider(**provider_kwargs)  # fails fast on bad arguments before any worker starts
    if provider.cache is None:
        raise ValueError("precompute needs cache_dir")
    jobs = [(seq, i) for seq in index.sequences for i in range(len(seq.frames))]
    computed = 0
    bar = tqdm(total=len(jobs), desc=f"motion cache {provider.cache_key}", unit="frame")
    if workers <= 1:
        for seq, i in jobs:
            computed += _fill(provider, seq, i)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(provider_kwargs,)) as pool:
            for fut in as_completed([pool.submit(_fill_in_worker, seq, i) for seq, i in jobs]):
                computed += fut.result()
                bar.update()
    bar.close()
    return {"computed": computed, "reused": len(jobs) - computed}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scnn_lightning.precompute", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--split")
    p.add_argument("--cache", required=True, help="cache folder (shared by every variant and run)")
    p.add_argument("--flow", default="dis", choices=FLOW_BACKENDS + ("flo",))
    p.add_argument("--flo-root", help='folder of <seq>/<stem>.flo files for --flow flo')
    p.add_argument("--prior", default="superpixel", choices=PRIORS)
    p.add_argument("--classifier", help="region classifier file (needed by --prior superpixel)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from scnn_lightning.data.readers import load_index

    kwargs = {"flow": args.flow, "prior": args.prior, "classifier": args.classifier, "cache_dir": args.cache,
              "flo_root": args.flo_root}
    try:
        counts = precompute(load_index(args.dataset, args.root, args.split), kwargs, workers=args.workers)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"misses (computed): {counts['computed']}  hits (reused): {counts['reused']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
