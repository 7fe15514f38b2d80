"""The library's shape as the project's rules state it: no function in xai/ over 60 lines unless its
docstring says why it is one piece (a marker line "One piece: <reason>")."""

from __future__ import annotations

import ast
from pathlib import Path

LIMIT = 60
XAI = Path(__file__).resolve().parent.parent / "xai"
MARKER = "One piece:"


def _long_functions(root: Path = XAI) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                reason = MARKER in (ast.get_docstring(node) or "")
                if lines > LIMIT and not reason:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_60_lines_without_its_reason():
    assert _long_functions() == []


def test_the_check_sees_a_long_function(tmp_path):
    package = tmp_path / "xai"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (package / "long.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    (package / "kept.py").write_text(f'def kept():\n    """{MARKER} a figure."""\n{body}\n', encoding="utf-8")
    assert _long_functions(package) == ["xai/long.py:1 long (61 lines)"]
