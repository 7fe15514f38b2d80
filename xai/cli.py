"""Command-line interface shared by visualize_scorecam.py and visualize_pretrained_model.py."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import XAIError

DEFAULT_OUTPUT = {"scorecam": "scorecam_visualizations", "gradcam": "pretrained_visualizations"}
DESCRIPTION = {
    "scorecam": "Score-CAM explanations and TP/FP/FN error maps of a segmentation model (no gradients).",
    "gradcam": "Grad-CAM explanations and TP/FP/FN error maps of a segmentation model.",
}


def build_parser(method: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION[method],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model_path", required=True, help="checkpoint (.pth): whole pickled model, state_dict or the project's format")
    p.add_argument("--num_samples", type=int, default=5, help="number of samples to visualise (first N of the split)")
    p.add_argument("--split", default="test", help="dataset split: train, val or test")
    p.add_argument("--output_dir", default=DEFAULT_OUTPUT[method], help="output directory")
    p.add_argument("--batch_size", type=int, default=32, help="masked images per forward pass (Score-CAM); lower it on out-of-memory")
    p.add_argument("--max_activation_maps", type=int, default=None,
                   help="keep only the N activation maps of largest spatial variance (faster; None = all)")
    p.add_argument("--encoder", default=None,
                   help="encoder architecture (default: the checkpoint's, else the config's: se_resnext50_32x4d)")
    p.add_argument("--img_size", type=int, nargs=2, default=None, metavar=("WIDTH", "HEIGHT"),
                   help="image size (default: the checkpoint's, else the config's: 512 256)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/phenocyte.yaml)")
    p.add_argument("--data_root", default=None, help="dataset root (default: the config's data_root)")
    p.add_argument("--arch", default=None, help="architecture for plain state_dicts (default: the config's: FPN)")
    p.add_argument("--classes", nargs="+", default=None, metavar="CLASS", help="explain only these classes, by name")
    p.add_argument("--target_layer", default=None, help="dotted module name (default: the config's: encoder.layer4)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 where the hardware runs it fast, else fp32")
    p.add_argument("--region", default="pred", choices=["pred", "gt", "tp", "fp", "fn", "all"],
                   help="pixels whose class score is explained")
    p.add_argument("--score", default="prob", choices=["prob", "logit"], help="score the class probability or its logit")
    p.add_argument("--all", action="store_true", help="explain the whole split (ignores --num_samples)")
    p.add_argument("--save_raw", action="store_true", help="also store un-normalised maps and channel weights in the npz")
    p.add_argument("--resume", action="store_true", help="skip samples whose outputs are complete")
    p.add_argument("--seed", type=int, default=0, help="seed of random channel selection")
    p.add_argument("--compare", action="store_true", help="run Grad-CAM and Score-CAM and write one comparison figure per sample")
    p.add_argument("--baseline", default="zero", choices=["zero", "none"], help="Score-CAM: subtract the score of a zero image")
    p.add_argument("--weights", default="raw", choices=["raw", "softmax"], help="Score-CAM: channel weights as measured or softmax-ed")
    p.add_argument("--channel_selection", default="variance", choices=["variance", "random"],
                   help="Score-CAM: which channels --max_activation_maps keeps")
    p.add_argument("--trust_checkpoint", action="store_true",
                   help="allow full unpickling of the checkpoint (runs code from the file: only for files you trust)")
    p.add_argument("--workers", type=int, default=2, help="threads rendering and writing figures")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(method: str, argv: Sequence[str] | None = None) -> int:
    """Parse, run the shared pipeline, and turn any XAIError into one line on stderr and exit 2."""
    args = build_parser(method).parse_args(argv)
    from .runtime import tune_cpu_allocator

    tune_cpu_allocator()
    import torch

    try:
        from .pipeline import RunOptions, run

        methods = ("gradcam", "scorecam") if args.compare else (method,)
        opts = RunOptions(
            model_path=args.model_path, methods=methods, output_dir=args.output_dir, num_samples=args.num_samples,
            split=args.split, all=args.all, batch_size=args.batch_size, max_activation_maps=args.max_activation_maps,
            encoder=args.encoder, arch=args.arch, img_size=tuple(args.img_size) if args.img_size else None,
            config=args.config, data_root=args.data_root, classes=args.classes, target_layer=args.target_layer,
            device=args.device, precision=args.precision, region=args.region, score=args.score,
            baseline=args.baseline, weights=args.weights, channel_selection=args.channel_selection,
            save_raw=args.save_raw, resume=args.resume, seed=args.seed, compare=args.compare,
            trust_checkpoint=args.trust_checkpoint, workers=args.workers, progress=not args.no_progress,
            command=[sys.argv[0].split("/")[-1], *(argv if argv is not None else sys.argv[1:])],
        )
        run(opts)
    except XAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed samples are kept; rerun with --resume to continue", file=sys.stderr)
        return 130
    except torch.OutOfMemoryError as exc:
        print(f"error: out of memory ({str(exc).splitlines()[0]}); lower --batch_size or --max_activation_maps",
              file=sys.stderr)
        return 3
    return 0

