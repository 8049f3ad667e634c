"""Xu et al.'s ablation: the intensity (sigmoid) output against the classification (softmax)
output on video, as frame-to-frame jitter on real clips, beside each head's accuracy.

Every model given has both heads (``logits`` -> softmax probabilities, ``intensity`` ->
per-emotion sigmoids), so the two outputs are compared on the same net, the same frames and
the same face crops: only the head differs. For each model and head:

- accuracy: PublicTest accuracy of the head's top emotion (argmax) against the FER2013 label,
  so "at equal accuracy" can be checked (and macro-F1), and against the FER+ majority vote
  (the sigmoid head learns the FER+ vote fractions);
- flips: share of consecutive analysed frames of one face track whose top emotion differs;
- |d score|: mean absolute change of a score between consecutive frames (score units);
- jitter/spread: that change per emotion divided by the spread (standard deviation) of the
  same score across the PublicTest faces, averaged over emotions: how far a score moves from
  one frame to the next relative to how far it moves between different faces. This puts the
  softmax and the sigmoid outputs on one scale.

The heads are compared on their raw per-frame outputs (``raw_scores``/``raw_intensity``); the
smoothed outputs the CLI shows (exponential moving average, the default half-life) are reported
beside them for reference.

Clips: filmed footage only: ``carphone``, ``single_face`` and ``sad_to_laughing`` of
``emolens.testing.footage`` (fetched by ``make test``; 661 frame pairs), plus any ``--clip`` given.

    python benchmarks/head_jitter.py --model src/emolens/weights/emolens.onnx \
        --model runs/papers/xu_vgg_compact/xu_vgg_compact.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, add_fer2013_arguments, pin_threads  # noqa: E402


JITTER_CLIPS = ("carphone", "single_face", "sad_to_laughing")


SERIES = {"softmax": "raw_scores", "sigmoid": "raw_intensity",            # the heads themselves
          "softmax, smoothed": "scores", "sigmoid, smoothed": "intensity"}  # what the CLI shows (EMA)


def head_series(recognizer, clip: Path, every: int) -> dict[int, dict[str, list]]:
    """Per track: the analysed frame numbers and, per ``SERIES`` entry, the scores (lists of 7-vectors)."""
    import numpy as np

    from emolens.emotions import EMOTIONS

    tracks: dict[int, dict[str, list]] = {}
    for result in recognizer.stream(str(clip), every=every, persons=False):   # the default smoothing
        for face in result.faces:
            t = tracks.setdefault(face.track_id, {"frames": [], **{k: [] for k in SERIES}})
            t["frames"].append(result.index)
            for key, field in SERIES.items():
                values = getattr(face, field)
                t[key].append(np.array([values[e] for e in EMOTIONS]))
    return tracks


def jitter(tracks: dict[int, dict[str, list]], head: str, spread, every: int) -> dict:
    """Flip rate, mean |d score| and jitter/spread over pairs of consecutive analysed frames of one track."""
    import numpy as np

    flips, steps = 0, []
    for t in tracks.values():
        frames, scores = t["frames"], t[head]
        for i in range(1, len(frames)):
            if frames[i] - frames[i - 1] != every:       # a gap (face lost) is not a frame-to-frame step
                continue
            a, b = scores[i - 1], scores[i]
            flips += int(np.argmax(a) != np.argmax(b))
            steps.append(np.abs(b - a))
    if not steps:
        return {"pairs": 0, "flips": None, "mean_abs_change": None, "jitter_over_spread": None}
    steps = np.stack(steps)
    return {"pairs": len(steps), "flips": flips / len(steps), "mean_abs_change": float(steps.mean()),
            "jitter_over_spread": float((steps.mean(axis=0) / np.maximum(spread, 1e-6)).mean())}


def head_accuracy(model, data: Path, ferplus: Path | None, split: str) -> dict:
    """PublicTest accuracy and macro-F1 of each head's argmax, and each score's spread across faces."""
    import numpy as np

    from emolens.evaluate import predict_dataset
    from emolens.metrics import classification_report
    from emolens.training.data import load_dataset

    ds = load_dataset(data, split=split, ferplus=ferplus if ferplus and ferplus.is_file() else None)
    out = predict_dataset(model, ds.images)
    voted = None if ds.ferplus_majority is None else ds.ferplus_majority >= 0
    heads = {}
    for head, scores in (("softmax", out.probabilities), ("sigmoid", out.intensity)):
        top = np.argmax(scores, axis=1)
        report = classification_report(ds.labels, top)
        heads[head] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                       "ferplus_accuracy": None if voted is None else
                       float((top[voted] == ds.ferplus_majority[voted]).mean()),
                       "spread": scores.std(axis=0)}
    return heads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path,
                    help="exported .onnx model with both heads (repeatable; default: the shipped model)")
    ap.add_argument("--clip", action="append", type=Path, default=[],
                    help="a real video clip to add to the packaged ones (repeatable)")
    ap.add_argument("--every", type=int, default=1, help="analyse every Nth frame (default 1)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    add_fer2013_arguments(ap)
    args = ap.parse_args()
    pin_threads(args.threads)

    from emolens.recognize import Recognizer
    from emolens.runtime import EmotionModel, default_model_path

    from emolens.testing.footage import FOOTAGE, available_footage, missing_reason

    # face_then_cartoon's face section is the single_face man again: counted once.
    clips = [path for name, path in available_footage().items() if name in JITTER_CLIPS] + list(args.clip)
    if not clips:
        raise SystemExit("no clip: " + "; ".join(missing_reason(n) for n in FOOTAGE) + "; or pass --clip PATH")
    for clip in clips:
        if not clip.is_file():
            raise SystemExit(f"--clip {clip}: not a file")
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: pass --data PATH to fer2013.csv.gz (PublicTest scores the heads)")
    models = args.model or [default_model_path()]
    results = []
    for path in models:
        model = EmotionModel(path, threads=args.threads)
        heads = head_accuracy(model, args.data, args.ferplus, args.split)
        recognizer = Recognizer(model=model, threads=args.threads)
        per_clip = {clip.name: head_series(recognizer, clip, args.every) for clip in clips}
        for head in SERIES:
            acc = heads[head.split(",")[0]]          # smoothing is over time: per-frame accuracy is the head's
            merged = {f"{c}:{k}": v for c, tr in per_clip.items() for k, v in tr.items()}
            row = {"model": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path), "head": head,
                   "accuracy": acc["accuracy"], "macro_f1": acc["macro_f1"], "ferplus_accuracy": acc["ferplus_accuracy"],
                   **jitter(merged, head, acc["spread"], args.every),
                   "clips": {c: jitter(tr, head, acc["spread"], args.every) for c, tr in per_clip.items()}}
            results.append(row)

    print(f"clips: {', '.join(c.name for c in clips)}; every {args.every}; "
          f"accuracy on {args.split}\n")
    print("| model | head | accuracy | macro-F1 | FER+ majority acc. | frame pairs | top-emotion flips "
          "| mean abs d score | jitter / spread |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        fmt = (lambda v, spec: "-" if v is None else format(v, spec))
        print(f"| {r['model']} | {r['head']} | {r['accuracy']:.2%} | {r['macro_f1']:.3f} | "
              f"{fmt(r['ferplus_accuracy'], '.2%')} | {r['pairs']} | "
              f"{fmt(r['flips'], '.1%')} | {fmt(r['mean_abs_change'], '.4f')} | {fmt(r['jitter_over_spread'], '.3f')} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
