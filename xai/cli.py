"""Command-line interface shared by visualize_scorecam.py, visualize_pretrained_model.py and `seedling-xai`.

seedling-xai scorecam --model_path best_model_FPN.pth     (= python visualize_scorecam.py ...)
seedling-xai gradcam --model_path best_model_FPN.pth      (= python visualize_pretrained_model.py ...)
seedling-xai synth --out data/demo                        (= python -m xai.synth ...)
seedling-xai train --config demo                          (= python -m xai.train ...)
python -m xai ...                                         (= seedling-xai ...)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import OutOfMemory, Terminated, XAIError, first_line

if TYPE_CHECKING:
    from .options import OptionSpec

DEFAULT_OUTPUT = {
    "scorecam": "scorecam_visualizations",
    "gradcam": "pretrained_visualizations",
    "occlusion": "occlusion_visualizations",
    "uncertainty": "uncertainty_visualizations",
}
DESCRIPTION = {
    "scorecam": "Score-CAM explanations and TP/FP/FN error maps of a segmentation model (no gradients).",
    "gradcam": "Grad-CAM explanations and TP/FP/FN error maps of a segmentation model.",
    "occlusion": "Occlusion sensitivity maps and TP/FP/FN error maps of a segmentation model (no gradients).",
    "uncertainty": "Predictive uncertainty (MC dropout) and TP/FP/FN error maps of a segmentation model.",
}
COMPARE = ("gradcam", "scorecam")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Prints a default only where it says something: not where the help already explains it, not a
    switch's False, not an unset None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


class _Parser(argparse.ArgumentParser):
    """Bad options are one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (--help lists the options)\n")


def _method_list(text: str) -> tuple[str, ...]:
    from .methods import get_method

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("name at least one method")
    for n in names:
        try:
            get_method(n)
        except XAIError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _source_and_samples(p: argparse.ArgumentParser, method: str) -> None:
    from .data import SPLITS

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model_path",
        help="checkpoint (.pth or .safetensors): whole pickled model, state_dict or the project's format",
    )
    source.add_argument(
        "--finalize",
        metavar="OUTPUT_DIR",
        help="only rebuild summary, manifest and gallery of a "
        "run folder from its samples/*.json (merges shards and resumed runs)",
    )
    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument(
        "--num_samples", type=int, default=5, help="number of samples to visualise (first N of the split)"
    )
    how_many.add_argument("--all", action="store_true", help="explain the whole split")
    p.add_argument("--split", default="test", choices=SPLITS, help="dataset split")
    p.add_argument("--output_dir", default=DEFAULT_OUTPUT[method], help="output directory")


def _model_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder",
        default=None,
        help="encoder architecture (default: the checkpoint's, else the config's, se_resnext50_32x4d)",
    )
    p.add_argument(
        "--img_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("WIDTH", "HEIGHT"),
        help="image size (default: the checkpoint's, else the config's, 512 256)",
    )
    p.add_argument(
        "--config", default=None, help="a packaged config (phenocyte, demo) or a YAML file (default: phenocyte)"
    )
    p.add_argument("--data_root", default=None, help="dataset root (default: the config's data_root)")
    p.add_argument("--arch", default=None, help="architecture for plain state_dicts (default: the config's, FPN)")
    p.add_argument("--classes", nargs="+", default=None, metavar="CLASS", help="explain only these classes, by name")
    p.add_argument(
        "--class_names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="the name of each output id, in id order (over the checkpoint's and the config's; README, 'Class names')",
    )
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")


def _text_parser(spec: OptionSpec) -> Any:
    def parse(text: str) -> Any:
        try:
            return spec.check(spec.parse(text))
        except XAIError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.kind.__name__  # argparse's "invalid <name> value" wording
    return parse


def method_option_flags(p: argparse.ArgumentParser) -> list[str]:
    """A flag per option name that a registered method declares (xai.options), its help and choices from
    the declaration, its default shown per method; unset flags leave each method's own default."""
    from .methods import methods

    declared: dict[str, list[tuple[str, OptionSpec]]] = {}
    for name, info in methods().items():
        for spec in info.options.specs():
            if spec.cli:
                declared.setdefault(spec.name, []).append((name, spec))
    group = p.add_argument_group("method options (each applies to the selected methods that have it)")
    for option_name, users in declared.items():
        spec = users[0][1]
        defaults = {m: s.null_words[0] if s.default is None and s.nullable else str(s.default) for m, s in users}
        if option_name == "target_layer":
            shown = "the config's, decoder"
        else:  # the most common default alone, then the methods that differ
            common = max(set(defaults.values()), key=list(defaults.values()).count)
            shown = "; ".join([common, *(f"{m} {d}" for m, d in defaults.items() if d != common)])
        takers = ", ".join(m for m, _ in users) if len(users) < len(methods()) else "every method"
        default = "" if "default:" in spec.help else f" (default: {shown})"
        if spec.kind is bool and spec.default is False:  # a switch: on when given, the method's default when not
            group.add_argument(
                f"--{option_name}", action="store_const", const=True, default=None, help=f"{spec.help} [{takers}]"
            )
            continue
        group.add_argument(
            f"--{option_name}",
            type=_text_parser(spec),
            default=None,
            choices=spec.choices,
            metavar=None if spec.choices else option_name.upper(),
            help=f"{spec.help} [{takers}]{default}",
        )
    return list(declared)


def _evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="also measure how faithful each map is (deletion, "
        "insertion, ROAD, Average Drop/Increase, localisation, sanity check): metrics.csv, report.html",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="method settings evaluated beside --methods (implies --evaluate), e.g. "
        "'scorecam:layer=decoder,baseline=none gradcam:layer=encoder.layer3'; keys: any option of the "
        "method, by name or short key (layer, maps, select, batch, ...)",
    )
    p.add_argument(
        "--pairs",
        nargs="+",
        default=None,
        metavar="A@B",
        help="paired differences A − B of evaluated variants in the report (default: the first method against "
        "each other one)",
    )
    p.add_argument("--eval_steps", type=int, default=50, help="steps S of the deletion and insertion curves")
    p.add_argument(
        "--no_road",
        action="store_true",
        help="leave ROAD out of --evaluate (its noisy linear imputation is the costliest metric on a CPU: "
        "about 0.1 s per perturbed 128x256 image on one core, 18 images per map and class)",
    )
    p.add_argument(
        "--stability_samples",
        type=int,
        default=3,
        help="noisy copies (±0.02 of the intensity range, seeded) per sample and method for max-sensitivity and the "
        "Spearman correlation under noise (0: none); each costs one more explanation",
    )
    p.add_argument(
        "--sanity_samples",
        type=int,
        default=2,
        help="the first N samples of the split also get the cascading-randomisation sanity check (0: none)",
    )


def _run_controls(p: argparse.ArgumentParser) -> None:
    from .mapfile import MAP_DTYPES
    from .methods import methods

    profiles = sorted({"default"} | {name for info in methods().values() for name in info.options.PROFILES})
    p.add_argument(
        "--profile",
        default="default",
        choices=profiles,
        help="the methods' defaults: default (chosen by the evidence in README) or paper (Score-CAM as "
        "published: raw weights, zero baseline)",
    )
    p.add_argument("--save_raw", action="store_true", help="also store un-normalised maps and weights in the npz")
    p.add_argument(
        "--map_dtype",
        default=MAP_DTYPES[0],
        choices=MAP_DTYPES,
        help="how raw_maps/*.npz stores the normalised maps: float16, uint8 (codes k of k/255) or float32; the run's "
        "maps are rounded to it before the figures, summaries and evaluation, so every number is the stored map's",
    )
    p.add_argument("--resume", action="store_true", help="keep samples whose outputs are complete")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of every method that draws random numbers and of the evaluation's random parts "
        "(reference map, ROAD noise, sanity check)",
    )
    p.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="allow full unpickling of the checkpoint (runs code from the file: only for files you trust)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="processes writing figures and maps files (0: in this process)"
    )
    p.add_argument(
        "--samples_per_call",
        type=int,
        default=1,
        help="samples each method explains in one call: the sweeps (Score-CAM's masked images, occlusion, "
        "RISE, Ablation-CAM) then fill --batch_size with those of all of them, for the large batches a GPU "
        "needs; the maps equal those of one sample at a time",
    )
    p.add_argument(
        "--max_pixels",
        type=int,
        default=400_000_000,
        help="skip photographs with more pixels (read from the file's header; memory grows with the photograph)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="explain only every N-th sample from the K-th "
        "(job arrays; 0 <= K < N); merge with --finalize OUTPUT_DIR when all are done. Under torchrun "
        "the ranks share the samples by themselves",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def build_parser(method: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of both CLIs: seed 000's options with their names and defaults, the run's options, and a
    flag per method option (generated from the methods' option dataclasses)."""
    from .methods import methods

    p = _Parser(prog=prog, description=DESCRIPTION[method], formatter_class=_Formatter)
    _source_and_samples(p, method)
    known = ", ".join(f"{n} ({i.label})" for n, i in methods().items())
    p.add_argument(
        "--methods",
        type=_method_list,
        default=None,
        metavar="M1,M2",
        help=f"methods to run, comma-separated, in the comparison figure's order: {known} "
        f"(default: {method}; with --compare: {','.join(COMPARE)})",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="run Grad-CAM and Score-CAM (or --methods) and write one comparison figure per sample",
    )
    _model_and_data(p)
    p.set_defaults(_method_options=method_option_flags(p))
    _evaluation_options(p)
    _run_controls(p)
    return p


def _methods(args: argparse.Namespace, method: str) -> tuple[str, ...]:
    if args.methods:
        if args.compare and len(args.methods) < 2:
            raise XAIError("--compare needs two or more --methods")
        return args.methods
    return COMPARE if args.compare else (method,)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests swap it), as tqdm-aware as any StreamHandler."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging() -> logging.Logger:
    """The library's loggers ("xai.*") print their messages on stderr, once per process."""
    logger = logging.getLogger("xai")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (what a cluster sends before preemption) stops the run like Ctrl-C: samples already
    explained are finished, the summaries of what is complete are written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_options(args: argparse.Namespace, method: str, argv: Sequence[str] | None) -> Any:
    """The RunOptions of parsed arguments."""
    from .pipeline import RunOptions

    named = {f.name for f in dataclasses.fields(RunOptions)}
    same = {k: v for k, v in vars(args).items() if k in named}  # flags named as the options they set
    return RunOptions(
        **{
            **same,
            "methods": _methods(args, method),
            "img_size": tuple(args.img_size) if args.img_size else None,
            "method_options": {k: getattr(args, k) for k in args._method_options if getattr(args, k) is not None},
            "progress": not args.no_progress,
            "evaluate": args.evaluate or bool(args.variants),
            "variants": tuple(args.variants or ()),
            "pairs": tuple(args.pairs or ()),
            "road": not args.no_road,
            "command": [sys.argv[0].split("/")[-1], *(argv if argv is not None else sys.argv[1:])],
        }
    )


def main(method: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse, run the shared pipeline, and turn any XAIError into one line on stderr and exit 2."""
    args = build_parser(method, prog).parse_args(argv)
    from .runtime import tune_cpu_allocator

    tune_cpu_allocator()
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .batching import is_out_of_memory

    logger = configure_logging()
    try:
        with _terminate_as_interrupt(), logging_redirect_tqdm(loggers=[logger]):
            if args.finalize:
                from .pipeline import finalize

                manifest = finalize(args.finalize)
                logger.info(
                    "finalized %d sample(s) in %s/ (index.html, summary.csv, manifest.json)",
                    manifest["samples"]["explained"],
                    Path(args.finalize),
                )
                return 0
            from .pipeline import run
            from .pipeline.distributed import parse_shard

            shard = parse_shard(args.shard) if args.shard else None

            opts = run_options(args, method, argv)
            run(opts, shard)
    except OutOfMemory as exc:
        print(f"error: {exc.cli_message()}", file=sys.stderr)
        return 3
    except XAIError as exc:
        print(f"error: {exc.cli_message()}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated (SIGTERM): completed samples are kept; rerun with --resume to continue", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: completed samples are kept; rerun with --resume to continue", file=sys.stderr)
        return 130
    except OSError as exc:  # a file the run cannot read or write (permissions, a read-only or vanished disk)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        print(
            f"error: out of memory ({first_line(exc, 200)}); lower --batch_size or --max_activation_maps",
            file=sys.stderr,
        )
        return 3
    return 0


COMMANDS = {
    "scorecam": "Score-CAM (visualize_scorecam.py)",
    "gradcam": "Grad-CAM (visualize_pretrained_model.py)",
    "occlusion": "occlusion sensitivity (visualize_occlusion.py)",
    "uncertainty": "MC-dropout uncertainty (visualize_uncertainty.py)",
    "inspect": "what the class ids of a dataset look like, against their names (python -m xai.inspection)",
    "synth": "synthetic seedling dataset (python -m xai.synth)",
    "train": "train a model on a dataset in the users' layout (python -m xai.train)",
}


def console_main(argv: Sequence[str] | None = None) -> int:
    """`seedling-xai <command> ...` and `python -m xai <command> ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<11} {what}" for name, what in COMMANDS.items()]
        print(
            "usage: seedling-xai {"
            + ",".join(COMMANDS)
            + "} ...\n\ncommands:\n"
            + "\n".join(lines)
            + "\n\n'seedling-xai <command> --help' lists a command's options.",
            file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr,
        )
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    command, rest = argv[0], argv[1:]
    if command in DEFAULT_OUTPUT:
        return main(command, rest, prog=f"seedling-xai {command}")
    from importlib import import_module

    from .errors import run_one_line

    module = {"inspect": "inspection"}.get(command, command)
    return run_one_line(import_module(f"xai.{module}").main, rest)
