"""Lines of code per folder of a trio-graph-scheduler tree: without blank lines, comments
and docstrings, so that moving or documenting code does not count as writing it.

    .venv/bin/python scripts/count_code_lines.py [TREE]
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections import Counter
from pathlib import Path

_SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def docstring_lines(source: str) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _DOCUMENTED) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> int:
    docs = docstring_lines(source)
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _SKIPPED:
            code.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docs)
    return len(code)


def main() -> None:
    tree = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    package = tree / "trio_graph_scheduler"
    per_folder: Counter[str] = Counter()
    for path in package.rglob("*.py"):
        per_folder[str(path.parent.relative_to(tree))] += code_lines(path.read_text())
    for folder in sorted(per_folder):
        print(f"{folder:45} {per_folder[folder]:6}")
    print(f"{'total':45} {sum(per_folder.values()):6}")


if __name__ == "__main__":
    main()
