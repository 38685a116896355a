"""Write the synthetic action dataset (see ``ip_tsn.data.synthetic``).

    python data_prep/make_synthetic.py --root data/synthetic            # default: 12 classes x 30/10/26 videos
    python data_prep/make_synthetic.py --root /tmp/tiny --tiny          # 2/1/1 videos, 24 frames, 64x64
    python data_prep/make_synthetic.py --root data/synthetic-v6 --version 6   # version 6, the negative control
"""

from __future__ import annotations

import argparse
import json

from ip_tsn.data.synthetic import DEFAULT_CONFIG, DEFAULT_QSCALE, DEFAULT_VERSION, TINY_CONFIG, VERSIONS, generate_synthetic


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="dataset root (videos/ and splits/ go under it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="tiny preset for tests; explicit flags override it")
    p.add_argument("--size", type=int, nargs="+", metavar="PX", help="H W (or one value for square); multiples of 16")
    p.add_argument("--frames", type=int, help="frames per video (default 48, tiny 24)")
    p.add_argument("--train", type=int, help="training videos per class (default 30, tiny 2)")
    p.add_argument("--val", type=int, help="validation videos per class (default 16, tiny 1)")
    p.add_argument("--test", type=int, help="test videos per class (default 26, tiny 1)")
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--version", type=int, default=DEFAULT_VERSION, choices=VERSIONS,
                   help="7 (default): the action fills 10 frames, an idle actor otherwise; 6: the control, acting throughout")
    p.add_argument("--qscale", type=int, default=DEFAULT_QSCALE, help="fixed MPEG-4 quantiser, 1 (best) .. 31 (default 10; the source copy for the flow is at 2)")
    p.add_argument("--workers", type=int, default=1, help="processes (spawn pool when > 1)")
    p.add_argument("--overwrite", action="store_true", help="re-encode existing videos")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    preset = TINY_CONFIG if args.tiny else DEFAULT_CONFIG
    counts = dict(preset["videos_per_class"])
    for split in counts:
        if getattr(args, split) is not None:
            counts[split] = getattr(args, split)
    if args.size is not None and len(args.size) not in (1, 2):
        p.error("--size takes H W or a single value")
    size = preset["size"] if args.size is None else (args.size[0], args.size[-1])
    try:
        summary = generate_synthetic(
            args.root, videos_per_class=counts, num_frames=args.frames or preset["num_frames"],
            size=size, fps=args.fps, seed=args.seed, qscale=args.qscale, workers=args.workers,
            overwrite=args.overwrite, progress=not args.quiet, version=args.version)
    except ValueError as err:  # the message names what is wrong: one line, no usage
        p.exit(2, f"{p.prog}: error: {err}\n")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
