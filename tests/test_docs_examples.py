"""Every example of README.md and docs/*.md runs as it stands, so the documentation cannot drift from the code.

Where: each page gets a fresh working directory that holds what `make demo` makes, but tiny: `data/demo`
(12 synthetic 60x120 seedlings, seed 0), the demo checkpoint `best_model_FPN.safetensors` (a seeded tiny
FPN on resnet18 at 64x64 in the project's format: `tests.helpers.tiny_fpn`), the same file under the
manual's name `best_model_FPN.pth`, and make demo's first run, `scorecam_visualizations/`. It also holds
links to the `visualize_*.py` scripts (the docs type commands at the repository's top folder) and a
user's photographs, all synthetic seedlings: `photos/` (two), `a.jpg`, `b.jpg`, `field/plate1/c.jpg`
and `field/plate2/d.jpg`.

Python: the ```python blocks of a page run one after the other in one namespace, as they stand (errors
name the page's line). A line `print(...)  # text` whose comment has no ':' documents what it prints:
the printed line must equal the comment (a comment with ':' explains rather than shows). Methods and
metrics that a block registers (docs/extending.md) are unregistered after the page.

Shell: ```bash, ```sh and ```shell blocks hold one command per line (comment lines left out, a line
ending in a backslash joined with the next; in ```console blocks the lines that start with `$ `). Each
command either runs or is left out by a rule of `classify`, which says why (each reason is a skipped
test: `pytest -ra` lists them). The project's commands run in the page's working directory, in this
process, with one torch thread: `python visualize_*.py` with runpy, `python -m xai` as its `__main__`,
`seedling-xai` as its entry point `xai.cli.console_main`, `python -m xai.synth|train|inspection` as
`console_main([name, ...])` (what their `__main__` runs). Each must exit 0 within TIMEOUT_S. A command
that an earlier page ran on the same inputs (data/ and the files and folders it names, by content) is not
run again: that result stands for both pages.

Speed adjustments, each appended only where the command does not give the flag itself:

- explaining commands (scorecam, gradcam, occlusion, uncertainty; not with --finalize or --help):
  `--num_samples 1` (not with --all), `--classes root`, `--max_activation_maps 4`, `--workers 0`,
  `--no_progress`; with --evaluate or --variants also `--eval_steps 4 --stability_samples 0
  --sanity_samples 0 --no_road`; where the run has these methods: `--n_samples 16` (kernel_shap, lime),
  `--steps 4` (integrated_gradients), `--shap_samples 2` (gradient_shap), `--num_masks 16` (rise);
- synth: `--n 12 --size 60 120` (at the checkpoint's 64x64 input a photograph of the varied default
  shapes can be narrower than occlusion's 32-pixel patch); train: `--epochs 1 --quiet`; inspect:
  `--max_images 12`.

Marks: `<!-- docs-test: skip (reason) -->` on the line right before a block leaves the block out, with
its reason (a block that needs a GPU, a user's own data or a cluster, or a deliberately partial sketch).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import re
import runpy
import shlex
import shutil
import signal
import sys
import time
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = sorted(ROOT.glob("visualize_*.py"))
CKPT = "best_model_FPN.safetensors"
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)")
MARK = re.compile(r"^[ \t]*<!--[ \t]*docs-test:[ \t]*skip[ \t]*\((?P<reason>.+)\)[ \t]*-->[ \t]*$")
TIMEOUT_S = 150  # one command or one block; the slowest takes about 15 s on two busy cores


# ---------------------------------------------------------------------------------------------- the pages


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # the line of the block's first code line, 1-based
    lang: str
    code: str
    skip: str | None  # the reason of a docs-test mark


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with the reason of the mark right before each, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    name = str(page.relative_to(ROOT))
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            if re.match(r"[ \t]*<!--[ \t]*docs-test", lines[i]) and not MARK.match(lines[i]):
                raise AssertionError(f"{name}:{i + 1}: a docs-test mark must read <!-- docs-test: skip (reason) -->")
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        mark = MARK.match(lines[i - 1]) if i > 0 else None
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end])
        found.append(Block(name, i + 2, m["lang"].lower(), code + "\n", mark["reason"].strip() if mark else None))
        i = end + 1
    marked = {b.line - 2 for b in found if b.skip}
    for j, line in enumerate(lines):
        if MARK.match(line) and j + 1 not in marked:
            raise AssertionError(f"{name}:{j + 1}: a docs-test mark belongs on the line right before a block")
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


# --------------------------------------------------------------------------------------- shell commands


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str  # as the page shows it (continuations joined)
    argv: tuple[str, ...]  # after environment assignments
    skip: str | None  # why it does not run here, or None


def commands(block: Block) -> list[Command]:
    """One command per non-comment line of a shell block; lines ending in a backslash continue."""
    raw = block.code.splitlines()
    found: list[Command] = []
    i = 0
    while i < len(raw):
        start, text = i, raw[i].strip()
        while text.endswith("\\") and i + 1 < len(raw):
            i += 1
            text = text[:-1].rstrip() + " " + raw[i].strip()
        i += 1
        if block.lang == "console":
            if not text.startswith("$ "):
                continue  # output
            text = text[2:]
        if not text or text.startswith("#"):
            continue
        words = shlex.split(text, comments=True)
        while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):
            words = words[1:]  # VAR=value before the command
        argv = tuple(words)
        found.append(Command(block.page, block.line + start, text, argv, block.skip or classify(text, argv)))
    return found


def _entry(argv: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """(command, arguments) of a project command: python visualize_*.py, python -m xai[.module], seedling-xai."""
    if argv[:1] == ("seedling-xai",) and len(argv) > 1:
        return argv[1], list(argv[2:])
    if argv[:1] != ("python",) or len(argv) < 2:
        return None
    if re.fullmatch(r"visualize_\w+\.py", argv[1]):
        return argv[1], list(argv[2:])
    if argv[1:2] == ("-m",) and len(argv) > 2:
        module = argv[2]
        if module == "xai" and len(argv) > 3:
            return argv[3], list(argv[4:])
        if module in ("xai.synth", "xai.train", "xai.inspection"):
            return {"xai.inspection": "inspect"}.get(module, module[4:]), list(argv[3:])
    return None


MAKE = {
    "install": "installs the project into .venv (the test runs in the installed project)",
    "demo": "the full-size demo (about two minutes of training): each page's working directory holds a tiny one",
    "test": "the whole test suite, of which this test is a part",
    "docs": "builds the site (tests/test_docs.py and `make docs` check it)",
}


def classify(text: str, argv: tuple[str, ...]) -> str | None:
    """Why a command does not run here, or None for one that does (every rule, in order)."""
    if not argv:
        return "nothing to run"
    word = argv[0]
    if "..." in argv:
        return "a placeholder: '...' stands for the arguments"
    if word == "make":
        return f"make {argv[1]}: " + MAKE.get(argv[1], "a make target") if len(argv) > 1 else "make"
    if word == "source":
        return "changes the calling shell (the test runs with the project's interpreter)"
    if word in ("pip", "git"):
        return f"{word}: changes the installation or the repository"
    if word in ("sbatch", "srun", "scontrol") or "$(scontrol" in text or "SLURM_" in text:
        return "a SLURM job: needs a cluster's scheduler"
    if word == "torchrun":
        nodes = argv[argv.index("--nnodes") + 1] if "--nnodes" in argv else "1"
        if nodes not in ("1", "1:1"):
            return "torchrun on several nodes: needs a cluster"
        return (
            "torchrun: a process per GPU, each importing torch, too slow on two cores (tests/test_distributed.py"
            " runs visualize_scorecam.py under torchrun with 2 gloo ranks)"
        )
    if word == "bash" and len(argv) > 1 and argv[1].startswith("bench/"):
        return f"{argv[1]}: an evidence run (hours of CPU; its results are the tables of docs/evidence.md)"
    if word.endswith("python") and len(argv) > 1 and argv[1].startswith("bench/"):
        return f"{argv[1]}: tabulates the output of an evidence run (runs/), which the test does not make"
    if word in ("open", "xdg-open"):
        return "opens a browser"
    if any(a.startswith("cuda") for a in argv) and not torch.cuda.is_available():
        return "needs a GPU"
    if _entry(argv) is None:
        raise AssertionError(f"no rule for the command `{text}`: run it or say why not in classify()")
    return None


ALL_COMMANDS = [c for b in ALL_BLOCKS if b.lang in SHELL for c in commands(b)]

EXPLAIN = {"scorecam", "gradcam", "occlusion", "uncertainty"}
SCRIPT_COMMAND = {"visualize_scorecam.py": "scorecam", "visualize_pretrained_model.py": "gradcam"}
SAMPLING = {  # method: (flag, value) of its sample count
    "kernel_shap": ("--n_samples", "16"),
    "lime": ("--n_samples", "16"),
    "integrated_gradients": ("--steps", "4"),
    "gradient_shap": ("--shap_samples", "2"),
    "rise": ("--num_masks", "16"),
}


def _has(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def adjusted(command: str, args: list[str]) -> list[str]:
    """The arguments with the speed adjustments of the module docstring appended where absent."""
    out = list(args)

    def add(flag: str, *value: str) -> None:
        if not _has(out, flag):
            out.extend((flag, *value))

    if _has(args, "--help") or _has(args, "-h") or _has(args, "--version") or _has(args, "--finalize"):
        return out
    if command in EXPLAIN:
        if not _has(args, "--all"):
            add("--num_samples", "1")
        add("--classes", "root")
        add("--max_activation_maps", "4")
        add("--workers", "0")
        add("--no_progress")
        if _has(args, "--evaluate") or _has(args, "--variants"):
            for flag, value in (("--eval_steps", "4"), ("--stability_samples", "0"), ("--sanity_samples", "0")):
                add(flag, value)
            add("--no_road")
        methods = args[args.index("--methods") + 1].split(",") if "--methods" in args else []
        for method in methods:
            if method in SAMPLING:
                add(*SAMPLING[method])
    elif command == "synth":
        add("--n", "12")
        add("--size", "60", "120")
    elif command == "train":
        add("--epochs", "1")
        add("--quiet")
    elif command == "inspect":
        add("--max_images", "12")
    return out


class TimedOut(BaseException):
    """Raised by the alarm: a BaseException, so that no `except Exception` of the code under test takes it."""


@contextlib.contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise TimedOut(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(argv: tuple[str, ...]) -> tuple[int, str]:
    """Exit code and output (stdout and stderr) of a project command, run in this process."""
    entry = _entry(argv)
    assert entry is not None
    command, args = entry
    args = adjusted(SCRIPT_COMMAND.get(command, command.removeprefix("visualize_").removesuffix(".py")), args)
    from xai.cli import console_main

    out = io.StringIO()
    saved = sys.argv, torch.set_num_threads
    torch.set_num_threads = lambda n: None  # type: ignore[assignment]  # one thread throughout (_one_thread)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                if command.endswith(".py"):
                    sys.argv = [command, *args]
                    runpy.run_path(command, run_name="__main__")
                    code: Any = 0
                elif argv[:3] == ("python", "-m", "xai"):
                    sys.argv = ["python -m xai", command, *args]
                    runpy.run_module("xai", run_name="__main__", alter_sys=False)
                    code = 0
                else:  # seedling-xai COMMAND, python -m xai.synth|train|inspection: console_main([COMMAND, ...])
                    sys.argv = ["seedling-xai", command, *args]
                    code = console_main([command, *args])
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.argv, torch.set_num_threads = saved
    if code is None:
        code = 0
    return (code if isinstance(code, int) else 1), out.getvalue()


# ----------------------------------------------------------------------------------- the working folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make demo` makes, but tiny, with a user's photographs (module docstring)."""
    import cv2

    from tests.helpers import tiny_fpn
    from xai.checkpoint import save_checkpoint
    from xai.config import DEFAULT_CLASSES
    from xai.synth import make_dataset

    base = tmp_path_factory.mktemp("demo")
    make_dataset(base / "data" / "demo", n=12, seed=0, size=(60, 120))
    model = tiny_fpn(seed=0)
    for name in (CKPT, "best_model_FPN.pth"):
        save_checkpoint(
            base / name, model, arch="FPN", encoder="resnet18", classes=list(DEFAULT_CLASSES), img_size=(64, 64)
        )
    for script in SCRIPTS:
        (base / script.name).symlink_to(script)
    images = sorted((base / "data" / "demo" / "images").iterdir())
    for i, target in enumerate(
        ["photos/p1.png", "photos/p2.png", "a.jpg", "b.jpg", "field/plate1/c.jpg", "field/plate2/d.jpg"]
    ):
        path = base / target
        path.parent.mkdir(parents=True, exist_ok=True)
        photo = cv2.imread(str(images[i]))
        assert photo is not None and cv2.imwrite(str(path), photo)
    with _in(base):
        code, output = run_in_process(("python", "visualize_scorecam.py", "--model_path", CKPT, "--config", "demo"))
    assert code == 0, output
    return base


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread, kept while a command runs (training sets its own): two threads on two busy cores
    ran the tiny model ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(demo: Path, tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    shutil.copytree(demo, work, symlinks=True)
    with _in(work):
        yield work


# ---------------------------------------------------------------------------------------------- the tests


PYTHON_PAGES = list(dict.fromkeys(b.page for b in ALL_BLOCKS if b.lang == "python" and not b.skip))
SHELL_PAGES = list(dict.fromkeys(c.page for c in ALL_COMMANDS if c.skip is None))


@contextlib.contextmanager
def _registries() -> Iterator[None]:
    """Blocks may register methods and metrics (docs/extending.md): the registries come back as they were."""
    from xai.methods import registry
    from xai.metrics import registry as metric_registry

    registry.methods()
    saved = dict(registry._REGISTRY), dict(metric_registry._METRICS)
    try:
        yield
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved[0])
        metric_registry._METRICS.clear()
        metric_registry._METRICS.update(saved[1])


def _documented_prints(code: str) -> dict[int, str]:
    """{line in the block: the text a `print(...)  # text` line documents} (comments without ':')."""
    found: dict[int, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    lines = code.splitlines()
    for tok in tokens:
        if tok.type == tokenize.COMMENT and ":" not in tok.string:
            row = tok.start[0]
            if lines[row - 1].lstrip().startswith("print("):
                found[row] = tok.string[1:].strip()
    return found


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run_as_they_stand(page: str, workdir: Path) -> None:
    path = str(ROOT / page)
    printed: dict[int, list[str]] = {}

    def print_(*args: Any, **kwargs: Any) -> None:
        frame = sys._getframe(1)
        if frame.f_code.co_filename == path and "file" not in kwargs:
            printed.setdefault(frame.f_lineno, []).append(kwargs.get("sep", " ").join(map(str, args)))
        print(*args, **kwargs)

    namespace: dict[str, Any] = {"__name__": "__docs__", "print": print_}
    with _registries():
        for block in (b for b in ALL_BLOCKS if b.page == page and b.lang == "python" and not b.skip):
            code = compile("\n" * (block.line - 1) + block.code, path, "exec", dont_inherit=True)
            with time_limit(TIMEOUT_S, f"{page}:{block.line}"):
                exec(code, namespace)
            for row, text in _documented_prints(block.code).items():
                line = block.line + row - 1
                assert printed.get(line), f"{page}:{line}: nothing printed"
                assert printed[line][-1] == text, (
                    f"{page}:{line}: printed {printed[line][-1]!r}, the page says {text!r}"
                )
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def inputs_digest(work: Path, argv: tuple[str, ...]) -> str:
    """A digest of what a command reads: data/ and every file or folder it names (a checkpoint, photographs),
    by content."""
    digest = hashlib.sha1()
    named = {Path(a) for a in argv if len(a) < 200 and not Path(a).is_absolute() and (work / a).exists()}
    for top in sorted({Path("data"), *named}):
        path = work / top
        for f in sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]:
            digest.update(str(f.relative_to(work)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


_RAN: dict[tuple[tuple[str, ...], str], tuple[str, int, str]] = {}  # (argv, inputs) -> (where, code, output)


@pytest.mark.parametrize("page", SHELL_PAGES)
def test_commands_run_as_they_stand(page: str, workdir: Path) -> None:
    """Each page's commands in order; one that an earlier page ran on the same inputs is not run again."""
    for command in (c for c in ALL_COMMANDS if c.page == page and c.skip is None):
        where = f"{page}:{command.line}"
        key = (command.argv, inputs_digest(workdir, command.argv))
        started = time.perf_counter()
        if key not in _RAN:
            with time_limit(TIMEOUT_S, f"{where} `{command.text}`"):
                _RAN[key] = (where, *run_in_process(command.argv))
        ran, code, output = _RAN[key]
        took = f"{time.perf_counter() - started:.1f} s" if ran == where else f"as {ran} (same inputs)"
        print(f"{where}: {took} `{command.text}`")
        assert code == 0, f"{where}: `{command.text}` exited {code}:\n{output[-3000:]}"


NOT_RUN = [
    (b.page, b.line, b.lang, b.code.splitlines()[0], b.skip) for b in ALL_BLOCKS if b.skip and b.lang not in SHELL
]
NOT_RUN += [(c.page, c.line, "command", c.text, c.skip) for c in ALL_COMMANDS if c.skip]


@pytest.mark.parametrize(("page", "line", "kind", "what", "reason"), NOT_RUN, ids=[f"{p}:{n}" for p, n, *_ in NOT_RUN])
def test_what_does_not_run_says_why(page: str, line: int, kind: str, what: str, reason: str) -> None:
    assert reason.strip(), f"{page}:{line}: a block or command left out without a reason"
    pytest.skip(f"{page}:{line}: {kind} `{what[:80]}` not run: {reason}")


def test_the_extraction_sees_the_examples() -> None:
    """The parser finds the blocks it must (so that a change of fence style cannot empty this test)."""
    readme = [b for b in ALL_BLOCKS if b.page == "README.md"]
    assert [b.lang for b in readme].count("python") >= 1 and [b.lang for b in readme].count("bash") >= 5
    runs = [c for c in ALL_COMMANDS if c.skip is None]
    assert len(runs) >= 20 and any(c.argv[0] == "seedling-xai" for c in runs)
    joined = next(c for c in ALL_COMMANDS if "--variants" in c.argv and "gradcam:layer=encoder.layer3" in c.argv)
    assert "\\" not in joined.text
    python_blocks = sum(b.lang == "python" for b in ALL_BLOCKS)
    assert python_blocks >= 15 and sum(b.lang == "python" and not b.skip for b in ALL_BLOCKS) >= python_blocks - 4
    assert ast.parse(next(b.code for b in ALL_BLOCKS if b.page == "docs/api.md" and b.lang == "python"))
    readme_python = next(b.code for b in readme if b.lang == "python")
    assert list(_documented_prints(readme_python).values()) == [
        "['background', 'hypocotyl', 'cotyledon', 'root', 'seed']"
    ]
