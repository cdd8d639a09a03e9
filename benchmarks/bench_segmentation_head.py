"""Issue 32's model trial: ``learn/segmentation.py`` (frozen ImageNet EfficientNet-Lite0 features at
four strides and a light trainable decoder) on CamVid 240x180, timed on this CPU.

    python benchmarks/bench_segmentation_head.py                    # the model's defaults, seed 0
    python benchmarks/bench_segmentation_head.py --scale 1 --epochs 10 --seeds 0 1 2

Extracts the train, val and test splits' features once, trains a decoder per seed on the whole
train split and scores val and test (one confusion matrix per split, void ignored). Prints the CPU
model, the feature and training seconds, training images/s, val and test mIoU and the test IoU per
class; the chapter's model choice starts from these numbers.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    from storage_scaling import data
    from storage_scaling.learn import segmentation as seg

    defaults = seg.SegmentationConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=defaults.scale, help="input upsampling before the backbone")
    ap.add_argument("--epochs", type=int, default=defaults.epochs)
    ap.add_argument("--width", type=int, default=defaults.width)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    config = replace(defaults, scale=args.scale, epochs=args.epochs, width=args.width).validate()

    dataset = "camvid-240x180"
    void, classes = data.spec(dataset).void_label, data.num_classes(dataset)
    print(f"CPU: {cpu_model()}; {config.params()}")
    start = time.perf_counter()
    sets = {s: data.load(dataset, s) for s in ("train", "val", "test")}
    masks = {s: v.decode_masks() for s, v in sets.items()}
    features = {s: seg.extract(v.decode(), config) for s, v in sets.items()}
    print(f"features of {sum(len(v) for v in sets.values())} images at {config.scale:g}x: "
          f"{time.perf_counter() - start:.0f} s; "
          + ", ".join(f"stride {s}: {f.shape[1:]}" for s, f in zip((4, 8, 16, 32), features["train"])))
    for seed in args.seeds:
        t0 = time.perf_counter()
        decoder = seg.fit(features["train"], masks["train"], classes, void, replace(config, seed=seed))
        train_s = time.perf_counter() - t0
        val, test = (seg.evaluate(decoder, features[s], masks[s], classes, void) for s in ("val", "test"))
        print(f"seed {seed}: train {train_s:.0f} s ({len(masks['train']) * config.epochs / train_s:.0f} images/s), "
              f"val mIoU {val['miou']:.3f}, test mIoU {test['miou']:.3f}, test mean class accuracy "
              f"{test['mean_class_accuracy']:.3f}; test IoU per class "
              + ", ".join(f"{c} {v:.2f}" for c, v in zip(sets["test"].classes, test["iou_per_class"])))


if __name__ == "__main__":
    main()
