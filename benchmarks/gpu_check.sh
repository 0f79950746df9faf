#!/usr/bin/env bash
# GPU check of the real-video study (docs/davis.md), under 8 minutes on one GPU, nothing downloaded:
# full-width VGG16 SCNN at 480x854 in bf16-mixed with channels_last (training and inference frames/s, peak
# GPU memory), predict with the shipped model on a DAVIS val sequence (frames/s; flow + temporal prior, computed
# on the CPU by predict's workers, against the network per frame) and one short stage-2 epoch of
# `experiments.run` on DAVIS train with the weak-label refresh.
#
#   benchmarks/gpu_check.sh DAVIS_ROOT [SALIENCY_ROOT] [OUT_JSON]
#
# DAVIS_ROOT: DAVIS-2016 in its official layout (e.g. data/davis-2016-half); SALIENCY_ROOT: the external maps
# (<model>/<seq>/<frame>.jpg, e.g. data/saliency-maps/davis-2016-half) for weak=davis, "-" for none (mbd only);
# OUT_JSON: default benchmarks/gpu_check.json. Needs the package installed (pip install -e .) with a CUDA torch.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
davis=$(realpath "$1")
saliency=${2:--}
[[ $saliency == "-" ]] || saliency=$(realpath "$saliency")
out=$(realpath -m "${3:-$repo/benchmarks/gpu_check.json}")

cd "$repo"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
args=(--device cuda --davis "$davis" --out "$out")
if [[ $saliency != "-" ]]; then
    args+=(--saliency "$saliency")
fi
# The Python side rewrites the JSON after each part, so a run stopped by this limit keeps what it measured.
exec timeout --signal=INT 480 python -m benchmarks.gpu_check "${args[@]}"
