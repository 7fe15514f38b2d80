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
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import Terminated, XAIError, first_line

if TYPE_CHECKING:
    from .options import Options, OptionSpec

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


def version_text() -> str:
    """What --version prints: the distribution's name and xai.__version__ (the installed metadata, that is
    pyproject.toml's version)."""
    from . import __version__

    return f"seedling-xai {__version__}"


def add_version_flag(p: argparse.ArgumentParser) -> None:
    """--version on a command's parser: prints version_text() on stdout and exits 0 (every CLI of the toolkit)."""
    p.add_argument("--version", action="version", version=version_text(), help="print the version and exit")


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


def _text_parser(spec: OptionSpec) -> Any:
    """What argparse calls on a flag's text (each value of a tuple): the declared type; the bounds and
    choices of the value are checked where the options are built, in the library's words."""

    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except XAIError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = spec.kind.__name__  # argparse's "invalid <name> value" wording
    return parse


def _shown(value: Any) -> str | None:
    """A default as --help shows it, or None where there is nothing to show (unset, empty, a switch)."""
    if value is None or isinstance(value, bool) or value == ():
        return None
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_flag(container: Any, spec: OptionSpec, help: str) -> None:
    """The flag of one declared option (xai.options), unset unless given (argparse.SUPPRESS): a switch
    for a boolean (it sets the opposite of the default), else its values' type, count and choices."""
    if spec.switch:
        container.add_argument(
            f"--{spec.flag}", dest=spec.name, action="store_const", const=not spec.default, default=None, help=help
        )
        return
    metavar = spec.metavar or (None if spec.choices else spec.flag.upper())
    container.add_argument(
        f"--{spec.flag}",
        dest=spec.name,
        type=_text_parser(spec),
        nargs=None if spec.count is None else "+" if spec.count < 0 else spec.count,
        default=None,
        choices=spec.choices,
        metavar=metavar,
        help=help,
    )


def option_flags(
    p: argparse.ArgumentParser, defaults: Options, sections: dict[str | None, Any], groups: dict[str, Any]
) -> dict[str | None, Any]:
    """A flag per declared option of `defaults` (RunOptions) that is on the command line, listed in its
    section (`sections` first, the others in the order their first option is declared), in its group of
    mutually exclusive flags (`groups`: those made already); its help says the default of `defaults`.
    Returns every section."""
    specs = [s for s in defaults.specs() if s.cli]
    sections = {None: p, **sections}
    order = [*sections, *dict.fromkeys(s.section for s in specs)]
    for spec in sorted(specs, key=lambda s: order.index(s.section)):
        if spec.section not in sections:
            sections[spec.section] = p.add_argument_group(spec.section)
        container = sections[spec.section]
        if spec.exclusive is not None:
            if spec.exclusive not in groups:
                groups[spec.exclusive] = container.add_mutually_exclusive_group()
            container = groups[spec.exclusive]
        shown = (
            None if spec.switch or spec.required or "default:" in spec.help else _shown(getattr(defaults, spec.name))
        )
        add_flag(container, spec, spec.help + (f" (default: {shown})" if shown is not None else ""))
    return sections


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
    for users in declared.values():
        spec = users[0][1]
        defaults = {m: s.null_words[0] if s.default is None and s.nullable else str(s.default) for m, s in users}
        common = max(set(defaults.values()), key=list(defaults.values()).count)  # then the methods that differ
        shown = "; ".join([common, *(f"{m} {d}" for m, d in defaults.items() if d != common)])
        takers = ", ".join(m for m, _ in users) if len(users) < len(methods()) else "every method"
        default = "" if "default:" in spec.help or spec.switch else f" (default: {shown})"
        add_flag(group, spec, f"{spec.help} [{takers}]{default}")
    return list(declared)


def command_defaults(method: str) -> Any:
    """The RunOptions a command starts from: its method and output folder (the researchers' manual's names)."""
    from .pipeline import RunOptions

    return RunOptions(model_path="", methods=(method,), output_dir=DEFAULT_OUTPUT[method])


def build_parser(method: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of both CLIs: the options of the researchers' manual, with their names and defaults,
    generated from the run's declared options (xai.pipeline.options.RunOptions), and a flag per method
    option (generated from the methods' option dataclasses)."""
    from .evaluation.settings import EVALUATION
    from .methods import methods
    from .pipeline.options import MODEL_AND_DATA, RUN, SAMPLES

    p = _Parser(prog=prog, description=DESCRIPTION[method], formatter_class=_Formatter)
    sections: dict[str | None, Any] = {
        title: p.add_argument_group(title) for title in (SAMPLES, MODEL_AND_DATA, EVALUATION, RUN)
    }
    source = sections[SAMPLES].add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--finalize",
        metavar="OUTPUT_DIR",
        help="only rebuild summary, manifest and gallery of a "
        "run folder from its samples/*.json (merges shards and resumed runs)",
    )
    sections = option_flags(p, command_defaults(method), sections, {"source": source})
    known = ", ".join(f"{n} ({i.label})" for n, i in methods().items())
    sections[SAMPLES].add_argument(
        "--methods",
        type=_method_list,
        default=None,
        metavar="M1,M2",
        help=f"methods to run, comma-separated, in the comparison figure's order: {known} "
        f"(default: {method}; with --compare: {','.join(COMPARE)})",
    )
    sections[SAMPLES].add_argument(
        "--compare",
        action="store_true",
        help="run Grad-CAM and Score-CAM (or --methods) and write one comparison figure per sample",
    )
    sections[RUN].add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="explain only every N-th sample from the K-th "
        "(job arrays; 0 <= K < N); merge with --finalize OUTPUT_DIR when all are done. Under torchrun "
        "the ranks share the samples by themselves",
    )
    p.set_defaults(_method_options=method_option_flags(p))
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
    """The RunOptions of parsed arguments: the command's defaults with the flags that were given."""
    defaults = command_defaults(method)
    given = {s.name: getattr(args, s.name) for s in defaults.specs() if s.cli and getattr(args, s.name) is not None}
    return defaults.replace(
        **given,
        methods=_methods(args, method),
        method_options={k: getattr(args, k) for k in args._method_options if getattr(args, k) is not None},
        command=(sys.argv[0].split("/")[-1], *(argv if argv is not None else sys.argv[1:])),
    )


def main(method: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse, run the shared pipeline, and turn any XAIError into one line on stderr and exit 2."""
    parser = build_parser(method, prog)
    add_version_flag(parser)  # the program's flag, not a run's: build_parser holds a run's flags only
    args = parser.parse_args(argv)
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
                    "finalized %d sample(s) in %s/ (index.html: the explorer, gallery.html, summary.csv, "
                    "manifest.json)",
                    manifest["samples"]["explained"],
                    Path(args.finalize),
                )
                return 0
            from .pipeline import run
            from .pipeline.distributed import parse_shard

            shard = parse_shard(args.shard) if args.shard else None

            opts = run_options(args, method, argv)
            run(opts, shard)
    except XAIError as exc:  # 2: bad input; 1: nothing explained (xai.errors.NothingExplained); 3: out of memory
        print(f"error: {exc.cli_message()}", file=sys.stderr)
        return exc.exit_code
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
    if argv[:1] == ["--version"]:
        print(version_text())
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<11} {what}" for name, what in COMMANDS.items()]
        print(
            "usage: seedling-xai {"
            + ",".join(COMMANDS)
            + "} ...\n\ncommands:\n"
            + "\n".join(lines)
            + "\n\n'seedling-xai <command> --help' lists a command's options; 'seedling-xai --version' prints the "
            "version.",
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
