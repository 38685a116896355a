"""``Preprocess``: one description of a stream's preprocessing, its defaults (the DataModule's), its
round trip, what it refuses, and that trained checkpoints store it and predict reads it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.deploy.fused_model import StreamEntry, read_fused_model, write_fused_model
from ip_tsn.deploy.predict import FusedPredictor
from ip_tsn.lit.checkpoint_info import CheckpointError, checkpoint_preprocess, stream_info


def test_round_trip_plain_values():
    pre = Preprocess(modality="p", num_segments=5, crop_size=112, scale_size=None, test_segments=7,
                     test_crops=3, flow_length=4, accumulate=False, flip=False, train_views=3)
    d = pre.to_dict()
    assert json.loads(json.dumps(d)) == d and d["in_channels"] == 5 == pre.in_channels
    assert Preprocess.from_dict(d) == pre
    assert Preprocess.from_dict({k: v for k, v in d.items() if k != "in_channels"}) == pre
    assert Preprocess(modality="flow", flow_length=4).in_channels == 8
    assert set(pre.reader_kwargs()) < set(Preprocess.keys())
    with pytest.raises(dataclasses.FrozenInstanceError):
        pre.crop_size = 32  # type: ignore[misc]


def test_missing_keys_take_the_defaults():
    assert Preprocess.from_dict({"modality": "mv"}) == Preprocess(modality="mv")
    assert Preprocess.from_dict({}) == Preprocess()


def test_unknown_keys_and_bad_values_refused():
    with pytest.raises(ValueError, match=r"x\.json: unknown preprocessing key\(s\) crop_sise, zoom"):
        Preprocess.from_dict({"modality": "rgb", "crop_sise": 3, "zoom": 2}, "x.json")
    with pytest.raises(ValueError, match="in_channels=3 does not fit modality 'p'"):
        Preprocess.from_dict({"modality": "p", "in_channels": 3})
    with pytest.raises(ValueError, match="x.json: .*flip is false"):
        Preprocess.from_dict({"test_crops": 10, "flip": False}, "x.json")
    with pytest.raises(ValueError):
        Preprocess(modality="depth")


def test_defaults_are_the_datamodules():
    """A DataModule built with no preprocessing argument has Preprocess' defaults, and stores them."""
    dm = VideoDataModule("synthetic", "data/synthetic")
    assert dm.preprocess == Preprocess()
    assert {k: dm.hparams[k] for k in Preprocess.keys()} == dataclasses.asdict(Preprocess())


def test_datamodule_builds_one_preprocess():
    dm = VideoDataModule(modality="p", crop_size=32, test_segments=3, test_crops=1, flip=False, train_views=3,
                         batch_size=4)
    assert dm.preprocess == Preprocess(modality="p", crop_size=32, test_segments=3, test_crops=1, flip=False,
                                       train_views=3)
    assert dm.preprocess == Preprocess.from_hparams(dm.hparams)
    assert dm.num_channels == 5 and (dm.test_segments, dm.test_crops, dm.num_segments) == (3, 1, 3)
    with pytest.raises(ValueError, match="flip is false"):
        VideoDataModule(test_crops=10, flip=False)


def test_trained_checkpoint_stores_it_and_predict_reads_it(tiny_streams, tmp_path):
    raw = torch.load(tiny_streams["pstream"], map_location="cpu", weights_only=True)
    stored = raw["preprocess"]
    pre = Preprocess.from_dict(stored)
    assert pre == Preprocess.from_hparams(raw["datamodule_hyper_parameters"])  # the config's, once
    assert (pre.modality, pre.crop_size, pre.test_segments, pre.in_channels) == ("p", 32, 3, 5)
    assert stream_info(raw)["preprocess"] == pre

    predictor = FusedPredictor.load(pstream=str(tiny_streams["pstream"]), device="cpu")
    assert predictor.streams[0].preprocess == dataclasses.replace(pre, test_crops=1)  # predict's default
    predictor = FusedPredictor.load(pstream=str(tiny_streams["pstream"]), device="cpu", crops=None)
    assert predictor.streams[0].preprocess == pre

    # predict reads the stored description, not the DataModule arguments
    raw["preprocess"] = {**stored, "test_segments": 2}
    changed = tmp_path / "changed.ckpt"
    torch.save(raw, changed)
    assert FusedPredictor.load(pstream=str(changed), device="cpu").streams[0].preprocess.test_segments == 2

    # a checkpoint from before the key: the DataModule arguments, as before
    del raw["preprocess"]
    old = tmp_path / "old.ckpt"
    torch.save(raw, old)
    assert FusedPredictor.load(pstream=str(old), device="cpu").streams[0].preprocess == \
        dataclasses.replace(pre, test_crops=1)

    # predict's input of a test video is the test protocol's, tensor for tensor
    dm = VideoDataModule(**raw["datamodule_hyper_parameters"])
    dm.setup("test")
    sample = dm.datasets["test"][0]
    stream = FusedPredictor.load(pstream=str(old), device="cpu", crops=None).streams[0]
    assert torch.equal(stream.inputs(dm.video_root / sample["video_id"], torch.device("cpu")), sample["input"])

    raw["preprocess"] = {**stored, "crop_sise": 3}
    with pytest.raises(CheckpointError, match="bad.ckpt: unknown preprocessing key.*crop_sise"):
        checkpoint_preprocess(raw, "bad.ckpt")


def test_fused_model_file_checks_its_preprocess(tmp_path):
    ok = write_fused_model(tmp_path / "ok.json", [StreamEntry("P", 1.0, torchscript=str(tmp_path / "p.pt"),
                                                              preprocess=Preprocess(modality="p").to_dict())], None)
    assert Preprocess.from_dict(read_fused_model(ok).streams[0].preprocess) == Preprocess(modality="p")
    bad = write_fused_model(tmp_path / "bad.json", [StreamEntry("P", 1.0, torchscript=str(tmp_path / "p.pt"),
                                                                preprocess={"modality": "p", "zoom": 2})], None)
    with pytest.raises(ValueError, match=r"bad\.json: stream 'P': unknown preprocessing key\(s\) zoom"):
        read_fused_model(bad)
