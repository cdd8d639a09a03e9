"""Issue 32's model trial: frozen ImageNet EfficientNet-Lite0 features at four strides and a light
trainable decoder, on CamVid 240x180, timed on this CPU (not yet the registered model).

    python benchmarks/bench_segmentation_head.py                    # 2x inputs, 30 epochs, seed 0
    python benchmarks/bench_segmentation_head.py --scale 1 --epochs 10 --seeds 0 1 2

The images of the train, val and test splits are decoded, upsampled ``--scale`` times (bilinear),
passed once through the frozen backbone of the ``pretrained`` tier (bf16 autocast), and the outputs
of blocks 1, 2, 4 and 6 (strides 4, 8, 16 and 32) kept in float16. The decoder projects each to 64
channels (1x1), fuses strides 32 -> 16 -> 8 by upsampling and adding, one 3x3 convolution at stride
8, adds the stride-4 projection, and classifies at stride 4; the loss is cross-entropy at that
resolution (the mask's every other pixel: nearest) with void ignored; scoring upsamples the logits to
the mask's size and counts one confusion matrix over the split (``metrics.pixel_confusion``). AdamW,
one-cycle learning rate. Prints the CPU model, the feature and training seconds, training images/s
and the val and test mIoU; the chapter's model choice starts from these numbers.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STAGES = (1, 2, 4, 6)  # timm EfficientNet blocks ending at strides 4, 8, 16, 32
CHANNELS = (24, 40, 112, 320)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def features(model, pixels: np.ndarray, scale: float, batch: int = 16) -> list[torch.Tensor]:
    """The frozen backbone's outputs at :data:`STAGES` for uint8 (N, H, W, 3) images, float16."""
    outs = {k: [] for k in STAGES}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(pixels), batch):
            x = torch.from_numpy(np.array(pixels[i:i + batch])).permute(0, 3, 1, 2).float().div(255)
            if scale != 1:
                x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            h = ((x - 0.5) / 0.5).contiguous(memory_format=torch.channels_last)
            h = model.bn1(model.conv_stem(h))
            for j, block in enumerate(model.blocks):
                h = block(h)
                if j in STAGES:
                    outs[j].append(h.float().to(torch.float16).contiguous())
    return [torch.cat(outs[k]) for k in STAGES]


class Decoder(nn.Module):
    def __init__(self, classes: int, width: int = 64):
        super().__init__()
        self.proj = nn.ModuleList([nn.Conv2d(c, width, 1) for c in CHANNELS])
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.cls = nn.Conv2d(width, classes, 1)

    def forward(self, fs, size=None):
        y = None
        for f, p in zip(reversed(fs[1:]), reversed(self.proj[1:])):
            z = p(f.float())
            y = z if y is None else z + F.interpolate(y, size=z.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse(y)
        z = self.proj[0](fs[0].float())
        out = self.cls(torch.relu(z + F.interpolate(y, size=z.shape[-2:], mode="bilinear", align_corners=False)))
        return out if size is None else F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def score(decoder, fs, masks, classes, void):
    from storage_scaling.learn import metrics

    decoder.eval()
    cm = 0
    with torch.no_grad():
        for i in range(0, len(masks), 32):
            out = decoder([f[i:i + 32] for f in fs], masks.shape[1:])
            cm = cm + metrics.pixel_confusion(out.argmax(1).numpy(), masks[i:i + 32], classes, void=void)
    return metrics.segmentation_metrics(cm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=2.0, help="input upsampling before the backbone")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    from storage_scaling import data, threads
    from storage_scaling.learn import pretrained

    dataset = "camvid-240x180"
    void, classes = data.spec(dataset).void_label, data.num_classes(dataset)
    print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}")
    start = time.perf_counter()
    sets = {s: data.load(dataset, s) for s in ("train", "val", "test")}
    masks = {s: v.decode_masks() for s, v in sets.items()}
    model = pretrained.backbone(True)
    with threads.library_cap():
        fs = {s: features(model, v.decode(), args.scale) for s, v in sets.items()}
    feature_s = time.perf_counter() - start
    print(f"features of {sum(len(v) for v in sets.values())} images at {args.scale:g}x: {feature_s:.0f} s; "
          + ", ".join(f"stride {2 ** (i + 2)}: {tuple(f.shape[1:])}" for i, f in enumerate(fs["train"])))
    train_masks = torch.from_numpy(masks["train"].astype(np.int64))
    step = round(masks["train"].shape[1] * args.scale / fs["train"][0].shape[2])  # mask pixels per stride-4 cell
    target = train_masks[:, ::step, ::step].contiguous() if step > 1 else train_masks
    if target.shape[1:] != fs["train"][0].shape[2:]:
        target = F.interpolate(train_masks[:, None].float(), size=fs["train"][0].shape[2:], mode="nearest")[:, 0].long()
    n = len(target)
    for seed in args.seeds:
        torch.manual_seed(seed)
        decoder = Decoder(classes)
        steps = args.epochs * -(-n // args.batch_size)
        opt = torch.optim.AdamW(decoder.parameters(), lr=args.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
        t0 = time.perf_counter()
        with threads.library_cap():
            for _ in range(args.epochs):
                decoder.train()
                for idx in torch.randperm(n).split(args.batch_size):
                    loss = F.cross_entropy(decoder([f[idx] for f in fs["train"]]), target[idx], ignore_index=void)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
            train_s = time.perf_counter() - t0
            val, test = (score(decoder, fs[s], masks[s], classes, void) for s in ("val", "test"))
        print(f"seed {seed}: train {train_s:.0f} s ({n * args.epochs / train_s:.0f} images/s), val mIoU "
              f"{val['miou']:.3f}, test mIoU {test['miou']:.3f}, test mean class accuracy "
              f"{test['mean_class_accuracy']:.3f}; test IoU per class "
              + ", ".join(f"{c} {v:.2f}" for c, v in zip(sets["test"].classes, test["iou_per_class"])))


if __name__ == "__main__":
    main()
