"""User errors as one stderr line and exit code 2; everything else is not swallowed."""

from __future__ import annotations

import pytest

from xai.errors import SampleError, Terminated, XAIError, exit_with_one_line, run_one_line


def test_exit_code_and_argv_pass_through(capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        return 3

    assert run_one_line(main, ["--flag", "x"]) == 3
    assert run_one_line(main) == 3
    assert seen == [["--flag", "x"], None]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [XAIError("bad flag --x"), SampleError("bad flag --x")])
def test_a_user_error_is_one_stderr_line_and_code_2(capsys, error):
    def main(argv):
        raise error

    assert run_one_line(main, []) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: bad flag --x\n" and captured.out == ""


def test_other_exceptions_and_interrupts_propagate():
    def bug(argv):
        raise ValueError("a bug, with its traceback")

    def terminated(argv):
        raise Terminated

    with pytest.raises(ValueError, match="a bug"):
        run_one_line(bug, [])
    with pytest.raises(KeyboardInterrupt):  # SIGTERM stops a run as Ctrl-C does
        run_one_line(terminated, [])
    assert issubclass(SampleError, XAIError) and not issubclass(Terminated, XAIError)


def test_exit_with_one_line_exits_with_mains_code(capsys):
    def fails(argv):
        assert argv is None  # main() reads sys.argv itself
        raise XAIError("no such file")

    with pytest.raises(SystemExit) as exited:
        exit_with_one_line(fails)
    assert exited.value.code == 2 and capsys.readouterr().err == "error: no such file\n"
    with pytest.raises(SystemExit) as exited:
        exit_with_one_line(lambda argv: 0)
    assert exited.value.code == 0
