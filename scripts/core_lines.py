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
# A line that opens a function body ends its signature with ") {" (const, noexcept, a trailing
# return type or override between); control statements and lambdas end the same way.
SIGNATURE = re.compile(r"\)\s*(const\s*)?(noexcept\s*)?(->.*)?(override\s*)?\{\s*$")
NOT_FUNCTIONS = re.compile(r"^\s*}?\s*(if|for|while|switch|catch|else|do)\b|\[[^\]]*\]\s*\(")


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
        if not SIGNATURE.search(line) or NOT_FUNCTIONS.search(line):
            i += 1
            continue
        depth, end = 0, i
        for end in range(i, len(lines)):
            depth += lines[end].count("{") - lines[end].count("}")
            if depth <= 0:
                break
        if end - i + 1 > MAX_FUNCTION_LINES:
            found.append((i + 1, end - i + 1, line.strip()))
        i = end + 1
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
