"""Synthetic benchmark clips in the DAVIS-2016 layout, where only motion tells the salient objects apart.

The paper's premise (Tang et al., TCSVT 2018, §I and §III-B) is that motion disambiguates saliency that
appearance alone cannot: the temporal prior Pt (Eq. 6) is built from optical flow for that reason.
These clips make the claim testable. Each clip shows

* a textured, moderately contrasted background seen by a moving camera (smooth pan, slight zoom), so
  the whole background moves in image space;
* 1–3 *moving* objects with their own trajectories relative to the background: the ground truth;
* 1–3 *static distractors* drawn from the same appearance distribution as the moving objects, fixed in
  the world (they move exactly with the camera) and absent from the ground truth — a single still
  frame cannot tell them apart from the salient objects;
* occlusions (every object has a depth) and objects entering and leaving the frame.

Layout written under `out` (the real DAVIS-2016 one):

    JPEGImages/480p/<seq>/00000.jpg        JPEG quality 95
    Annotations/480p/<seq>/00000.png       8-bit grey 0/255 (every K-th frame with `sparse_every=K`)
    ImageSets/480p/train.txt, val.txt      `/JPEGImages/... /Annotations/...`, one line per frame
    Meta/<seq>/distractors/00000.png       visible distractor pixels, 0/255 (a DAVIS reader ignores Meta/)
    Meta/<seq>/scene.json                  per-frame world-to-image camera affine, object roles and depths
    Meta/generator.json                    every parameter + version; written last = "benchmark complete"

Frames without ground truth (sparse mode) get an image-only ImageSets line. The benchmark is generated
in a hidden folder beside `out` and renamed into place at the end, so a killed run never leaves a
half-written benchmark under `out`.

    python -m scnn_lightning.data.synthetic --out DIR --sequences 8 --frames 40 --height 128 --width 224 --seed 0
"""

from __future__ import annotations

import argparse
import json
import numbers
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scnn_lightning.errors import DataError

GENERATOR_VERSION = 1
RESOLUTION = "480p"  # the folder name DAVIS readers expect, whatever the actual frame size
JPEG_QUALITY = 95
MIN_SIDE = 16

# Independent random streams: the clip of sequence i depends only on (seed, i), not on how many
# sequences are generated; the train/val split has its own stream.
_CLIP_STREAM = 1
_SPLIT_STREAM = 2


# --------------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """One object: a polygon in its own frame, a two-colour shading, and a pose per frame (world px)."""

    moving: bool
    depth: float  # larger is nearer the camera
    outline: np.ndarray  # (N, 2) polygon of unit max radius
    radius: float
    colours: np.ndarray  # (2, 3) RGB in [0, 1], blended across the object along `shade_angle`
    shade_angle: float
    centres: np.ndarray  # (T, 2) world position per frame
    angles: np.ndarray  # (T,) rotation per frame
    scales: np.ndarray  # (T,) size factor per frame


@dataclass(frozen=True)
class Scene:
    """One clip before rendering: world texture, camera path and objects; frames come from `render_frame`."""

    height: int
    width: int
    background: np.ndarray  # (Hc, Wc, 3) float32 RGB world texture, larger than a frame
    camera_centres: np.ndarray  # (T, 2) world point seen at the frame centre
    camera_zooms: np.ndarray  # (T,) >= 1
    actors: tuple[Actor, ...]  # sorted back to front

    @property
    def frames(self) -> int:
        return len(self.camera_zooms)


def world_to_image(scene: Scene, t: int) -> np.ndarray:
    """The 2×3 affine mapping world (background canvas) pixels to frame-t image pixels."""
    zoom = scene.camera_zooms[t]
    cx, cy = scene.camera_centres[t]
    return np.array(
        [
            [zoom, 0.0, (scene.width - 1) / 2 - zoom * cx],
            [0.0, zoom, (scene.height - 1) / 2 - zoom * cy],
        ]
    )


# --------------------------------------------------------------------------------------------------
# Sampling a scene
# --------------------------------------------------------------------------------------------------


def _background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smoothed multi-octave colour noise: a muted base colour with moderate, mostly luminance contrast.

    The fine octaves give optical flow something to lock onto everywhere, so the camera motion is
    measurable on the background and not only on the objects.
    """
    noise = np.zeros((height, width, 3), np.float32)
    cell, weight = max(height, width) / 4, 1.0
    while cell >= 2:
        grid = rng.standard_normal((max(2, round(height / cell)), max(2, round(width / cell)), 3))
        noise += weight * cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        cell, weight = cell / 2, weight * 0.8
    noise = (noise - noise.mean((0, 1))) / (noise.std((0, 1)) + 1e-6)
    luminance = noise.mean(2, keepdims=True)
    texture = 0.8 * luminance + 0.35 * (noise - luminance)  # colour wobble smaller than brightness
    base = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.6))
    contrast = rng.uniform(0.08, 0.14)
    return np.clip(base + contrast * texture, 0.0, 1.0).astype(np.float32)


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    hsv = np.array([[[hue * 360.0, saturation, value]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _outline(rng: np.random.Generator, points: int = 72) -> np.ndarray:
    """A closed polygon of max radius 1: an ellipse, a smooth blob or a rounded polygon."""
    theta = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    kind = rng.integers(3)
    if kind == 0:  # ellipse
        shape = np.stack([np.cos(theta), rng.uniform(0.5, 1.0) * np.sin(theta)], 1)
    elif kind == 1:  # blob: a radius wobbling with a few low harmonics
        radius = np.ones_like(theta)
        for k in range(2, 6):
            radius += rng.uniform(0.0, 0.3 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        shape = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
    else:  # rounded polygon: irregular corners, cut three times (Chaikin) to round them
        corners = rng.integers(3, 7)
        angles = np.sort(2 * np.pi * (np.arange(corners) + rng.uniform(-0.25, 0.25, corners)) / corners)
        shape = rng.uniform(0.8, 1.0, (corners, 1)) * np.stack([np.cos(angles), np.sin(angles)], 1)
        for _ in range(3):
            following = np.roll(shape, -1, axis=0)
            shape = np.stack([0.75 * shape + 0.25 * following, 0.25 * shape + 0.75 * following], 1).reshape(-1, 2)
    return shape / np.linalg.norm(shape, axis=1).max()


def _object_colours(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """Two saturated colours, each clearly away from the background's mean colour (high contrast)."""
    colours = []
    while len(colours) < 2:
        colour = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0))
        if np.linalg.norm(colour - background_mean) >= 0.35:
            colours.append(colour)
    return np.stack(colours)


def _smooth_wave(rng: np.random.Generator, times: np.ndarray, amplitude: float, speed: float) -> np.ndarray:
    """amplitude·sin(ω t + φ) whose peak speed is `speed` px/frame: smooth, bounded, never too fast."""
    omega = min(speed / max(amplitude, 1e-6), 0.5)
    return amplitude * np.sin(omega * times + rng.uniform(0, 2 * np.pi))


def _always_visible_box(camera_centres: np.ndarray, camera_zooms: np.ndarray, height: int, width: int) -> np.ndarray:
    """World box [[x0, y0], [x1, y1]] inside every frame's view (the camera pans by less than a frame)."""
    half = np.array([(width - 1) / 2, (height - 1) / 2])[None] / camera_zooms[:, None]
    return np.stack([(camera_centres - half).max(0), (camera_centres + half).min(0)])


def _moving_path(rng, times, world_centre, *, height, width, speed, wide) -> np.ndarray:
    """Smooth world trajectory (T, 2): a Lissajous-like loop around a point near the world centre.

    A `wide` loop reaches far enough to leave the frame and come back (objects entering/leaving).
    """
    reach = rng.uniform(0.35, 0.6, 2) if wide else rng.uniform(0.08, 0.22, 2)
    anchor = world_centre + rng.uniform(-0.12, 0.12, 2) * [width, height]
    return anchor + np.stack(
        [_smooth_wave(rng, times, reach[0] * width, speed), _smooth_wave(rng, times, reach[1] * height, speed)], 1
    )


def _distractor_position(rng, paths: list[np.ndarray], visible: np.ndarray, size: float) -> np.ndarray:
    """A fixed world point inside the always-visible box, usually on a moving object's path so that
    the two occlude each other at some point of the clip."""
    lower, upper = visible
    if rng.uniform() < 0.7:
        points = np.concatenate(paths) + rng.uniform(-0.1, 0.1, 2) * size
        inside = points[((points >= lower) & (points <= upper)).all(1)]
        if len(inside):
            return inside[rng.integers(len(inside))]
    return rng.uniform(lower, upper)


def sample_scene(rng: np.random.Generator, *, frames: int, height: int, width: int) -> Scene:
    """Draw one clip: background, camera path, moving objects and static distractors (see module doc)."""
    times = np.arange(frames, dtype=np.float64)
    diagonal = float(np.hypot(height, width))

    # Camera: bounded pan on both axes plus a slight zoom-in; the canvas covers every view.
    pan = np.array([rng.uniform(0.1, 0.25) * width, rng.uniform(0.1, 0.25) * height])
    pan_speed = rng.uniform(0.004, 0.015) * diagonal
    margin = np.ceil(pan).astype(int) + 4
    canvas_w, canvas_h = width + 2 * margin[0], height + 2 * margin[1]
    background = _background_texture(rng, canvas_h, canvas_w)
    world_centre = np.array([(canvas_w - 1) / 2, (canvas_h - 1) / 2])
    camera_centres = world_centre + np.stack([_smooth_wave(rng, times, a, pan_speed) for a in pan], 1)
    zoom_depth = rng.uniform(0.0, 0.06)
    camera_zooms = 1.0 + zoom_depth * (1 - np.cos(rng.uniform(0.02, 0.08) * times + rng.uniform(0, np.pi))) / 2

    # Moving objects and distractors share one appearance/size distribution; only the motion differs.
    n_moving, n_distractors = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    background_mean = background.mean((0, 1))
    size = np.sqrt(height * width)

    def appearance() -> dict:
        return dict(
            outline=_outline(rng),
            radius=rng.uniform(0.07, 0.14) * size,
            colours=_object_colours(rng, background_mean),
            shade_angle=rng.uniform(0, 2 * np.pi),
            depth=rng.uniform(0, 1),
        )

    actors = []
    for index in range(n_moving):
        # The first object stays mostly in view (rarely-empty GT), except in a fifth of the clips.
        wide = index > 0 or rng.uniform() < 0.2
        speed = rng.uniform(0.012, 0.03) * diagonal
        centres = _moving_path(rng, times, world_centre, height=height, width=width, speed=speed, wide=wide)
        angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.03, 0.03) * times
        scales = 1.0 + 0.08 * np.sin(rng.uniform(0.05, 0.2) * times + rng.uniform(0, 2 * np.pi))
        actors.append(Actor(moving=True, centres=centres, angles=angles, scales=scales, **appearance()))

    visible = _always_visible_box(camera_centres, camera_zooms, height, width)
    paths = [actor.centres for actor in actors]
    for _ in range(n_distractors):
        centre = _distractor_position(rng, paths, visible, size)
        centres = np.repeat(centre[None], frames, 0)
        angles = np.full(frames, rng.uniform(0, 2 * np.pi))
        actors.append(Actor(moving=False, centres=centres, angles=angles, scales=np.ones(frames), **appearance()))

    actors.sort(key=lambda actor: actor.depth)
    return Scene(height, width, background, camera_centres, camera_zooms, tuple(actors))


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def render_frame(scene: Scene, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame t as (RGB uint8 image, salient mask {0,1}, visible-distractor mask {0,1}).

    Objects are painted back to front with anti-aliased edges; a pixel belongs to the nearest object
    covering at least half of it, so the masks hold only *visible* pixels and never overlap.
    """
    affine = world_to_image(scene, t)
    image = cv2.warpAffine(
        scene.background, affine, (scene.width, scene.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    owner = np.full((scene.height, scene.width), -1, np.int16)
    for index, actor in enumerate(scene.actors):
        _paint_actor(image, owner, index, actor, t, affine)
    moving = np.array([actor.moving for actor in scene.actors] + [False])  # index -1 (background) -> False
    salient = moving[owner].astype(np.uint8)
    distractor = ((owner >= 0) & ~moving[owner]).astype(np.uint8)
    rgb = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return rgb, salient, distractor


def _paint_actor(image: np.ndarray, owner: np.ndarray, index: int, actor: Actor, t: int, affine: np.ndarray) -> None:
    cos, sin = np.cos(actor.angles[t]), np.sin(actor.angles[t])
    rotation = np.array([[cos, -sin], [sin, cos]])
    world = actor.centres[t] + actor.radius * actor.scales[t] * actor.outline @ rotation.T
    points = world @ affine[:, :2].T + affine[:, 2]
    frame_h, frame_w = owner.shape
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 2, [frame_w, frame_h])
    if x0 >= x1 or y0 >= y1:
        return  # entirely outside the frame
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed_point = np.rint((points - [x0, y0]) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    cv2.fillPoly(alpha, [fixed_point], 255, lineType=cv2.LINE_AA, shift=4)

    # Shading: blend the two colours along a direction that turns with the object.
    centre = actor.centres[t] @ affine[:, :2].T + affine[:, 2]
    direction = actor.shade_angle + actor.angles[t]
    ys, xs = np.mgrid[y0:y1, x0:x1]
    along = ((xs - centre[0]) * np.cos(direction) + (ys - centre[1]) * np.sin(direction)) / (
        actor.radius * actor.scales[t] * affine[0, 0]
    )
    mix = np.clip((along + 1) / 2, 0, 1)[..., None].astype(np.float32)
    colour = (1 - mix) * actor.colours[0] + mix * actor.colours[1]

    weight = (alpha.astype(np.float32) / 255.0)[..., None]
    patch = image[y0:y1, x0:x1]
    patch[...] = (1 - weight) * patch + weight * colour
    owner[y0:y1, x0:x1][alpha >= 128] = index


# --------------------------------------------------------------------------------------------------
# Writing the benchmark
# --------------------------------------------------------------------------------------------------


def sequence_name(index: int) -> str:
    return f"syn{index:04d}"


def split_sequences(names: list[str], *, seed: int, val_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic train/val split: round(fraction·N) val sequences (at least one if the fraction is
    positive and N ≥ 2), always at least one train sequence."""
    n_val = int(round(val_fraction * len(names)))
    if val_fraction > 0 and len(names) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, len(names) - 1)
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(len(names))
    val = {names[i] for i in order[:n_val]}
    return [n for n in names if n not in val], [n for n in names if n in val]


def _write_png(path: Path, mask: np.ndarray) -> None:
    _write_encoded(path, mask * np.uint8(255))


def _write_encoded(path: Path, pixels: np.ndarray, options: tuple[int, ...] = ()) -> None:
    """Encode with OpenCV by the file's suffix (BGR order for colour) and write the bytes."""
    ok, data = cv2.imencode(path.suffix, pixels, list(options))
    if not ok:
        raise DataError(path, f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image")
    path.write_bytes(data.tobytes())


def _write_json(path: Path, content: dict) -> None:
    # Plain write: files only ever go into the staging folder, whose final rename is the atomic step.
    path.write_text(json.dumps(content, indent=2) + "\n")


def _write_sequence(root: Path, name: str, scene: Scene, sparse_every: int | None) -> list[str]:
    """Write one clip; return its ImageSets lines (image-only for frames without ground truth)."""
    images = root / "JPEGImages" / RESOLUTION / name
    annotations = root / "Annotations" / RESOLUTION / name
    distractors = root / "Meta" / name / "distractors"
    for folder in (images, annotations, distractors):
        folder.mkdir(parents=True)
    lines = []
    for t in range(scene.frames):
        rgb, salient, distractor = render_frame(scene, t)
        stem = f"{t:05d}"
        _write_encoded(images / f"{stem}.jpg", rgb[..., ::-1], (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
        _write_png(distractors / f"{stem}.png", distractor)
        line = f"/JPEGImages/{RESOLUTION}/{name}/{stem}.jpg"
        if sparse_every is None or t % sparse_every == 0:
            _write_png(annotations / f"{stem}.png", salient)
            line += f" /Annotations/{RESOLUTION}/{name}/{stem}.png"
        lines.append(line)
    _write_json(
        root / "Meta" / name / "scene.json",
        {
            "world_to_image": [world_to_image(scene, t).round(6).tolist() for t in range(scene.frames)],
            "objects": [
                {"role": "moving" if a.moving else "distractor", "depth": round(float(a.depth), 6)}
                for a in scene.actors
            ],
        },
    )
    return lines


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _parameters(*, sequences, frames, height, width, seed, sparse_every, val_fraction) -> dict:
    """Validate the generator's arguments (ValueError naming the bad one) and return them as the
    plain dict stored in generator.json."""
    integers = {"sequences": (sequences, 1), "frames": (frames, 1), "height": (height, MIN_SIDE),
                "width": (width, MIN_SIDE), "seed": (seed, 0)}  # fmt: skip
    for name, (value, minimum) in integers.items():
        if not _is_int(value, minimum):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if sparse_every is not None and not _is_int(sparse_every, 1):
        raise ValueError(f"sparse_every must be None or an integer >= 1, got {sparse_every!r}")
    if not (isinstance(val_fraction, numbers.Real) and 0.0 <= val_fraction < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return {
        **{name: int(value) for name, (value, _) in integers.items()},
        "sparse_every": None if sparse_every is None else int(sparse_every),
        "val_fraction": float(val_fraction),
    }


def generate_clips(
    out: str | Path,
    *,
    sequences: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    sparse_every: int | None = None,
    val_fraction: float = 0.2,
) -> Path:
    """Generate the benchmark under `out` (replacing an earlier generated one) and return `out`.

    Everything is written into a hidden folder beside `out` and renamed into place at the end, with
    `Meta/generator.json` written last. A folder that exists, is not empty and holds no
    generator.json is not ours: it is left alone and a `DataError` is raised.
    """
    params = _parameters(
        sequences=sequences,
        frames=frames,
        height=height,
        width=width,
        seed=seed,
        sparse_every=sparse_every,
        val_fraction=val_fraction,
    )
    out = Path(out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp, which makes it private: mode 0700) so the benchmark gets the usual permissions.
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    staging.mkdir()
    try:
        names = [sequence_name(i) for i in range(params["sequences"])]
        lines = {}
        for index, name in enumerate(names):
            rng = np.random.default_rng([params["seed"], _CLIP_STREAM, index])
            scene = sample_scene(rng, frames=params["frames"], height=params["height"], width=params["width"])
            lines[name] = _write_sequence(staging, name, scene, params["sparse_every"])
        train, val = split_sequences(names, seed=params["seed"], val_fraction=params["val_fraction"])
        image_sets = staging / "ImageSets" / RESOLUTION
        image_sets.mkdir(parents=True)
        for split, members in (("train", train), ("val", val)):
            (image_sets / f"{split}.txt").write_text("".join(line + "\n" for n in members for line in lines[n]))
        _write_json(
            staging / "Meta" / "generator.json",
            {
                "generator": "scnn_lightning.data.synthetic",
                "version": GENERATOR_VERSION,
                "parameters": params,
                "layout": {"resolution": RESOLUTION, "jpeg_quality": JPEG_QUALITY},
                "splits": {"train": train, "val": val},
            },
        )
        _swap_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; cannot write a benchmark there")
    if out.is_dir() and any(out.iterdir()) and not (out / "Meta" / "generator.json").is_file():
        raise DataError(
            out,
            "folder is not empty and holds no Meta/generator.json (not a complete generated benchmark); "
            "refusing to overwrite it — delete it or choose another --out",
        )


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished benchmark onto `out`; an old one is moved aside first, then deleted."""
    if not out.exists():
        staging.rename(out)
        return
    retired = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
    out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired)


def read_generator_info(out: str | Path) -> dict | None:
    """The generator.json of a complete benchmark under `out`, or None when there is none."""
    path = Path(out) / "Meta" / "generator.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(path, f"unreadable generator info ({error})") from error


def ensure_clips(out: str | Path, **parameters) -> Path:
    """`generate_clips(out, **parameters)` unless `out` already holds exactly that benchmark."""
    wanted = _parameters(**{"sparse_every": None, "val_fraction": 0.2, **parameters})
    info = read_generator_info(out)
    if info is not None and info.get("version") == GENERATOR_VERSION and info.get("parameters") == wanted:
        return Path(out)
    return generate_clips(out, **wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scnn_lightning.data.synthetic",
        description="Write synthetic clips (moving objects among look-alike static distractors) "
        "in the DAVIS-2016 layout.",
    )
    parser.add_argument("--out", type=Path, required=True, help="benchmark root to create or replace")
    parser.add_argument("--sequences", type=int, required=True)
    parser.add_argument("--frames", type=int, required=True, help="frames per sequence")
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--sparse-every", type=int, default=None, help="annotate only every K-th frame (from 0)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of sequences listed in val.txt")
    args = parser.parse_args(argv)
    try:
        out = generate_clips(
            args.out,
            sequences=args.sequences,
            frames=args.frames,
            height=args.height,
            width=args.width,
            seed=args.seed,
            sparse_every=args.sparse_every,
            val_fraction=args.val_fraction,
        )
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        parser.error(str(error))
    info = read_generator_info(out)
    print(f"wrote {out}: train {info['splits']['train']}, val {info['splits']['val']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
