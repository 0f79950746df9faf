import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scnn_lightning.data.synthetic import generate_clips
from scnn_lightning.errors import DataError
from scnn_lightning.motion.cache import MotionCache
from scnn_lightning.motion.provider import MotionProvider
from scnn_lightning.precompute import main as precompute_main

sys.path.insert(0, str(Path(__file__).parent))
from motion_clip import make_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


MB = 1_000_000


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "maps").glob("*/*.npz")) if (cache / "maps").is_dir() else []


def _final_entries(cache: Path) -> list[Path]:
    return [p for p in _entries(cache) if not p.name.startswith(".")]


def test_provider_cache_hit_serves_what_a_miss_served(tmp_path):
    seq, discs, _ = make_clip(tmp_path / "img", "clip", frames=3)
    cache = tmp_path / "cache"
    first = MotionProvider(prior="magnitude", cache_dir=cache)
    fresh = [first.maps(seq, i) for i in range(3)]
    assert first.stats == {"hits": 0, "misses": 3}
    second = MotionProvider(prior="magnitude", cache_dir=cache)
    again = [second.maps(seq, i) for i in range(3)]
    assert second.stats == {"hits": 3, "misses": 0}
    for a, b in zip(fresh, again):  # a cold and a warm cache give a run the same inputs
        np.testing.assert_array_equal(a.pt, b.pt)
        np.testing.assert_array_equal(a.flow_gray, b.flow_gray)
        assert b.pt.dtype == np.float32
    # Another prior parameter is another key.
    other = MotionProvider(prior="magnitude", cache_dir=cache, percentile=95.0)
    assert other.cache_key != first.cache_key
    other.maps(seq, 0)
    assert other.stats["misses"] == 1
    assert len(_final_entries(cache)) == 4 and sorted(p.name for p in cache.iterdir()) == ["maps"]


def test_entry_of_an_854x480_frame_is_small_and_round_trips(tmp_path):
    """One frame's entry is under 1 MB and reads back within the 8-bit rounding of the maps."""
    seq, _, _ = make_clip(tmp_path / "img", "clip", frames=2, height=480, width=854)
    cache = tmp_path / "cache"
    cached = MotionProvider(prior="magnitude", cache_dir=cache).maps(seq, 0)
    exact = MotionProvider(prior="magnitude").maps(seq, 0)
    assert sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) <= MB
    assert len(_final_entries(cache)) == 1
    assert np.abs(cached.pt - exact.pt).max() <= 0.5 / 255 + 1e-6  # Pt moves by at most half an 8-bit step
    np.testing.assert_allclose(cached.flow_gray, exact.flow_gray, atol=1e-6)  # 8-bit by construction: exact
    # Even incompressible maps stay under 1 MB: 8 bits a pixel for each of the two maps.
    noise = np.random.default_rng(0).random((2, 480, 854))
    MotionCache(tmp_path / "noise").save("cd" * 20, pt=noise[0], flow_gray=noise[1])
    assert MotionCache(tmp_path / "noise").path("cd" * 20).stat().st_size <= MB


def test_changed_frame_invalidates_entry(tmp_path):
    seq, _, _ = make_clip(tmp_path / "img", "clip", frames=2)
    provider = MotionProvider(prior="magnitude", flow="farneback", cache_dir=tmp_path / "cache")
    provider.maps(seq, 0)
    path = seq.frames[1].image
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # frame 1 rewritten
    provider.maps(seq, 0)
    assert provider.stats == {"hits": 0, "misses": 2}


def test_corrupt_entry_is_named(tmp_path):
    cache = MotionCache(tmp_path)
    key, names = "ab" * 20, ("pt", "flow_gray")
    cache.save(key, pt=np.zeros((4, 4)), flow_gray=np.ones((4, 4)))
    assert cache.load(key, names)["flow_gray"].tolist() == np.ones((4, 4)).tolist()
    with pytest.raises(ValueError, match="finite and in"):
        cache.save(key, pt=np.full((4, 4), np.nan), flow_gray=np.ones((4, 4)))
    with open(cache.path(key), "wb") as fh:  # float maps (not this format) are refused, not misread
        np.savez_compressed(fh, pt=np.zeros((4, 4), np.float16), flow_gray=np.zeros((4, 4), np.float16))
    with pytest.raises(DataError, match="8-bit"):
        cache.load(key, names)
    cache.path(key).write_bytes(b"garbage")
    with pytest.raises(DataError, match="delete it to recompute") as err:
        cache.load(key, names)
    assert str(cache.path(key)) in str(err.value)


def test_killed_precompute_resumes_to_a_complete_cache(tmp_path, capsys):
    root = generate_clips(tmp_path / "davis", sequences=2, frames=12, height=240, width=320, seed=0)
    cache = tmp_path / "cache"
    args = ["--dataset", "davis", "--root", str(root), "--split", "train", "--cache", str(cache),
            "--prior", "magnitude", "--flow", "farneback"]
    from scnn_lightning.data.readers import load_index

    total = len(load_index("davis", root, "train").frames)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "scnn_lightning.precompute", *args, "--workers", "1"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(_final_entries(cache)) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(_final_entries(cache))
    assert 3 <= done_at_kill < total, f"kill landed at {done_at_kill}/{total} entries"

    assert precompute_main([*args, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    computed = int(out.split("misses (computed):")[1].split()[0])
    reused = int(out.split("hits (reused):")[1].split()[0])
    assert computed + reused == total and reused >= done_at_kill
    entries = _final_entries(cache)
    assert len(entries) == total
    for p in entries:
        with np.load(p) as entry:
            assert sorted(entry.files) == ["flow_gray", "pt"]
            assert all(entry[k].dtype == np.uint8 and entry[k].shape == (240, 320) for k in entry.files)

    assert precompute_main([*args, "--workers", "1"]) == 0
    assert "misses (computed): 0 " in capsys.readouterr().out


def test_precompute_reports_missing_classifier(tmp_path, capsys):
    root = generate_clips(tmp_path / "davis", sequences=1, frames=2, height=32, width=48, seed=0)
    code = precompute_main(["--dataset", "davis", "--root", str(root), "--cache", str(tmp_path / "c"),
                            "--prior", "superpixel"])
    assert code == 2 and "train_classifier" in capsys.readouterr().err


def test_provider_with_flo_folder(tmp_path):
    from scnn_lightning.motion.flow import write_flo

    seq, _, _ = make_clip(tmp_path / "img", "clip", frames=2)
    flow = np.zeros((96, 128, 2), np.float32)
    flow[30:60, 40:80] = (5, 0)
    write_flo(tmp_path / "flo" / "clip" / "00000.flo", flow)
    with pytest.raises(ValueError, match="flo_root"):
        MotionProvider(prior="magnitude", flow="flo")
    provider = MotionProvider(prior="magnitude", flow="flo", flo_root=tmp_path / "flo", cache_dir=tmp_path / "c")
    for i in range(2):  # frame 1 is the last one: it reuses frame 0's file
        pt = provider.maps(seq, i).pt
        assert pt[45, 60] == 1 and pt[5, 5] < 1e-3
    assert provider.stats == {"hits": 0, "misses": 2}
    (tmp_path / "flo" / "clip" / "00000.flo").unlink()
    with pytest.raises(DataError, match="00000.flo"):
        MotionProvider(prior="magnitude", flow="flo", flo_root=tmp_path / "flo").maps(seq, 0)
