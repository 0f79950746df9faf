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


def _entries(cache: Path, kind: str = "maps") -> list[Path]:
    return sorted((cache / kind).glob("*/*.npy")) if (cache / kind).is_dir() else []


def _final_entries(cache: Path, kind: str = "maps") -> list[Path]:
    return [p for p in _entries(cache, kind) if not p.name.startswith(".")]


def test_provider_cache_hit_and_shared_flow(tmp_path):
    seq, discs, _ = make_clip(tmp_path / "img", "clip", frames=3)
    cache = tmp_path / "cache"
    first = MotionProvider(prior="magnitude", cache_dir=cache)
    fresh = [first.maps(seq, i) for i in range(3)]
    assert first.stats == {"hits": 0, "misses": 3}
    second = MotionProvider(prior="magnitude", cache_dir=cache)
    again = [second.maps(seq, i) for i in range(3)]
    assert second.stats == {"hits": 3, "misses": 0}
    for a, b in zip(fresh, again):
        np.testing.assert_allclose(a.pt, b.pt, atol=1e-3)  # float16 storage
        np.testing.assert_allclose(a.flow_gray, b.flow_gray, atol=1e-3)
        assert b.pt.dtype == np.float32
    # Another prior parameter is another key; the flow entries are shared, not recomputed.
    other = MotionProvider(prior="magnitude", cache_dir=cache, percentile=95.0)
    assert other.cache_key != first.cache_key
    other.maps(seq, 0)
    assert other.stats["misses"] == 1
    assert len(_final_entries(cache, "flow")) == 3 and len(_final_entries(cache, "maps")) == 4


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
    cache.save("maps", "ab" * 20, np.zeros((2, 4, 4)))
    assert cache.load("maps", "ab" * 20).shape == (2, 4, 4)
    cache.path("maps", "ab" * 20).write_bytes(b"garbage")
    with pytest.raises(DataError, match="delete it to recompute") as err:
        cache.load("maps", "ab" * 20)
    assert str(cache.path("maps", "ab" * 20)) in str(err.value)


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
    for p in entries + _final_entries(cache, "flow"):
        arr = np.load(p)
        assert arr.dtype == np.float16 and np.isfinite(arr).all()
    for p in entries:
        arr = np.load(p)
        assert arr.shape == (2, 240, 320) and arr.min() >= 0 and arr.max() <= 1

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
