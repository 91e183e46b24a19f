#!/usr/bin/env python3
"""The core's line budget, as tinygrad's sz.py keeps one.

Prints the code lines (not blank, not comment) of each file of the engine core and fails when
their sum exceeds the budget written in the README ("core line budget: N"), or when any function
in the core is longer than MAX_FUNCTION_LINES lines (counted from its signature to its closing
brace, blanks and comments included: that is what a reader reads)."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The engine core: the tensor handle, the op declaration, the tape record and the backward loop.
CORE = ["autograd/tensor.h", "autograd/tensor.cpp", "autograd/op.h", "autograd/op.cpp",
        "autograd/tape.h", "autograd/tape_core.h", "autograd/tape.cpp", "autograd/backward.h",
        "autograd/backward.cpp"]
MAX_FUNCTION_LINES = 60
NOT_FUNCTIONS = re.compile(r"^\s*(if|for|while|switch|catch|else|do|namespace|struct|class|enum|"
                           r"union|template\s*<[^>]*>\s*(struct|class))\b|=\s*\[|\[[^\]]*\]\s*\(")


def strip_comments(text):
    """The text without // and /* */ comments (string literals kept), line structure intact."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def code_lines(lines):
    return sum(1 for line in lines if line.strip())


def long_functions(lines):
    """(first line number, length, signature) of each function body longer than the limit."""
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        opens_body = line.rstrip().endswith("{") and "(" in "".join(lines[max(0, i - 3):i + 1])
        if opens_body and not NOT_FUNCTIONS.search(line) and line.startswith(("", " ")):
            depth, j = 0, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth <= 0:
                    break
                j += 1
            length = j - i + 1
            if length > MAX_FUNCTION_LINES and re.search(r"\)\s*(const\s*)?(noexcept\s*)?"
                                                         r"(->\s*[\w:<>&*]+\s*)?\{\s*$", line):
                found.append((i + 1, length, line.strip()))
            i = j + 1 if re.search(r"\)\s*(const\s*)?(noexcept\s*)?(->.*)?\{\s*$", line) else i + 1
        else:
            i += 1
    return found


def main():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"core line budget: (\d+)", readme)
    if not match:
        sys.exit("core_lines: the README states no 'core line budget: N'")
    budget = int(match.group(1))
    total, failures = 0, []
    for name in CORE:
        path = ROOT / name
        if not path.exists():
            continue
        lines = strip_comments(path.read_text()).split("\n")
        count = code_lines(lines)
        total += count
        print(f"{count:6d}  {name}")
        for line, length, signature in long_functions(lines):
            failures.append(f"{name}:{line}: a function of {length} lines (limit "
                            f"{MAX_FUNCTION_LINES}): {signature}")
    print(f"{total:6d}  core code lines (budget {budget})")
    if total > budget:
        failures.append(f"the core has {total} code lines, over its budget of {budget}")
    for failure in failures:
        print("core_lines: " + failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
