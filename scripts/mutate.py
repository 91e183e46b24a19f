#!/usr/bin/env python3
"""Source-mutation testing for tapegrad's engine, checker and optimizers.

Applies one simple mutation at a time to the given source files (swap + and -, <= and <, >= and
>, == and !=, && and ||, true and false; delete a statement line), rebuilds the library and the
test binary, runs the tests and counts the mutant as killed when they fail (or time out) and
as survived when they pass. Mutants that do not compile are discarded and counted apart.

It never touches the checkout it is run from: the committed tree (HEAD, or --rev) is exported
with `git archive` into a work folder of its own (default /tmp/tapegrad-mutate), built there with
ccache, and the mutated file is restored after every mutant (also on Ctrl-C or an error).
Commit what you want to test first.

Run by hand, not in CI:

    scripts/mutate.py autograd/gradcheck.cpp nn/optim.cpp --max-mutants 40 \\
        --filter 'Gradcheck*:Checker*:SGD*:Adam*:Optimizer*:ClipGradNorm*:Schedulers*'

Each mutant costs one recompile of the mutated file, one link of tapegrad_tests and one test run:
about 30 to 60 s on a 2-core machine, so 40 mutants take 20 to 40 minutes. The first run also
builds everything once (minutes, or much less when ccache already holds the objects).
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass

# (pattern, replacement): each match of the pattern is one mutant. clang-format puts spaces
# around binary operators, so requiring them tells `a < b` from `data<T>()` and `a - b` from `-x`.
OPERATORS = [
    (r"(?<= )\+(?= )", "-"),
    (r"(?<= )-(?= )", "+"),
    (r"(?<= )\+=(?= )", "-="),
    (r"(?<= )-=(?= )", "+="),
    (r"(?<= )<=(?= )", "<"),
    (r"(?<= )>=(?= )", ">"),
    (r"(?<= )<(?= )", "<="),
    (r"(?<= )>(?= )", ">="),
    (r"(?<= )==(?= )", "!="),
    (r"(?<= )!=(?= )", "=="),
    (r"(?<= )&&(?= )", "||"),
    (r"(?<= )\|\|(?= )", "&&"),
    (r"\btrue\b", "false"),
    (r"\bfalse\b", "true"),
]

# Lines that are not worth mutating: preprocessor, declarations of templates, comments.
DECLARATION = re.compile(
    r"\s*(?:(?:const|static|constexpr|auto)\s+)*[A-Za-z_][\w:]*(?:<[^;=]*>)?[\s&*]+"
    r"([A-Za-z_]\w*)\s*(?:=|;|\(|\{)")
SKIP_LINE = re.compile(r"^\s*(#|//|template\s*<|namespace\b|using\b|\}|\{|$)")


@dataclass
class Mutant:
    path: str
    line: int  # 1-based
    column: int  # 0-based, -1 for a deleted line
    original: str
    replacement: str

    def describe(self, source_line):
        if self.column < 0:
            return f"{self.path}:{self.line}: deleted `{source_line.strip()}`"
        return (f"{self.path}:{self.line}:{self.column + 1}: `{self.original}` -> "
                f"`{self.replacement}` in `{source_line.strip()}`")


def mask_strings_and_comments(line):
    """The line with string and character literals and // comments blanked, same length."""
    out = []
    i = 0
    quote = None
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                out.append("  ")
                i += 2
                continue
            if c == quote:
                quote = None
                out.append(c)
            else:
                out.append(" ")
        elif c in "\"'":
            quote = c
            out.append(c)
        elif line.startswith("//", i):
            out.append(" " * (len(line) - i))
            break
        else:
            out.append(c)
        i += 1
    return "".join(out)[: len(line)]


def mutants_of(path, lines):
    found = []
    in_block_comment = False
    previous = ";"  # the last code line's end: a statement starts after ; { } or a label
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if in_block_comment:
            in_block_comment = "*/" not in stripped
            continue
        if stripped.startswith("/*"):
            in_block_comment = "*/" not in stripped
            continue
        code = mask_strings_and_comments(text.rstrip("\n")).rstrip()
        if not code.strip():
            continue
        starts_statement = previous[-1:] in (";", "{", "}", ":")
        previous = code
        if SKIP_LINE.match(code):
            continue
        for pattern, replacement in OPERATORS:
            for m in re.finditer(pattern, code):
                found.append(Mutant(path, number, m.start(), m.group(0), replacement))
        # A whole statement on one line; not a declaration of a name used further on (without
        # it the file would not compile), though an unused RAII guard may go.
        declaration = DECLARATION.match(code)
        used_later = declaration and any(
            re.search(r"\b" + declaration.group(1) + r"\b", line) for line in lines[number:])
        if (starts_statement and code.endswith(";") and not used_later
                and not re.match(r"\s*return\b", code)):
            found.append(Mutant(path, number, -1, stripped, ""))
    return found


def apply(mutant, lines):
    mutated = list(lines)
    text = mutated[mutant.line - 1]
    if mutant.column < 0:
        mutated[mutant.line - 1] = "\n"
    else:
        end = mutant.column + len(mutant.original)
        mutated[mutant.line - 1] = text[: mutant.column] + mutant.replacement + text[end:]
    return mutated


def run(command, cwd, timeout, env=None):
    try:
        done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, env=env, text=True)
        return done.returncode, done.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return None, out or ""


def export_tree(repo, rev, destination):
    """Makes destination hold exactly the files of rev, rewriting only those that changed, so
    that unchanged files keep their timestamps and the build stays incremental."""
    with tempfile.TemporaryDirectory() as staging:
        archive = os.path.join(staging, "tree.tar")
        subprocess.run(["git", "-C", repo, "archive", "--format=tar", "-o", archive, rev],
                       check=True)
        fresh = os.path.join(staging, "tree")
        with tarfile.open(archive) as tar:
            tar.extractall(fresh)
        wanted = set()
        for root, _, files in os.walk(fresh):
            for name in files:
                relative = os.path.relpath(os.path.join(root, name), fresh)
                wanted.add(relative)
                source = os.path.join(fresh, relative)
                target = os.path.join(destination, relative)
                if os.path.exists(target):
                    with open(source, "rb") as a, open(target, "rb") as b:
                        if a.read() == b.read():
                            continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(source, target)
        for root, _, files in os.walk(destination):
            for name in files:
                relative = os.path.relpath(os.path.join(root, name), destination)
                if relative not in wanted:
                    os.remove(os.path.join(destination, relative))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="source files to mutate, relative to the repo")
    parser.add_argument("--rev", default="HEAD", help="the commit to test (default HEAD)")
    parser.add_argument("--work-dir", default="/tmp/tapegrad-mutate",
                        help="where the tree is exported and built (kept for ccache reuse)")
    parser.add_argument("--filter", default="*", help="--gtest_filter for tapegrad_tests")
    parser.add_argument("--max-mutants", type=int, default=40,
                        help="per file; a seeded random sample when there are more")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lines", help="only mutate lines A-B (applies to every file)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--test-timeout", type=int, default=300, help="seconds per test run")
    parser.add_argument("--build-timeout", type=int, default=900, help="seconds per build")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    args = parser.parse_args()

    repo = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()
    source = os.path.join(args.work_dir, "src")
    build = os.path.join(args.work_dir, "build")
    os.makedirs(source, exist_ok=True)
    export_tree(repo, args.rev, source)

    chosen = {}
    for path in args.files:
        with open(os.path.join(source, path)) as f:
            lines = f.readlines()
        all_mutants = mutants_of(path, lines)
        if args.lines:
            low, high = (int(x) for x in args.lines.split("-"))
            all_mutants = [m for m in all_mutants if low <= m.line <= high]
        sample = all_mutants
        if len(all_mutants) > args.max_mutants:
            sample = random.Random(args.seed).sample(all_mutants, args.max_mutants)
            sample.sort(key=lambda m: (m.line, m.column))
        chosen[path] = (lines, sample, len(all_mutants))
        print(f"{path}: {len(all_mutants)} mutants, testing {len(sample)}", flush=True)
        if args.list:
            for m in sample:
                print("  " + m.describe(lines[m.line - 1]))
    if args.list:
        return 0

    env = dict(os.environ, CCACHE_BASEDIR=args.work_dir, CCACHE_NOHASHDIR="1")
    configure = ["cmake", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                 "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", "-DTAPEGRAD_BUILD_BENCHMARKS=OFF"]
    make = ["cmake", "--build", build, "-j", str(args.jobs), "--target", "tapegrad_tests"]
    test = [os.path.join(build, "tests", "tapegrad_tests"), f"--gtest_filter={args.filter}"]
    code, out = run(configure, source, args.build_timeout, env)
    if code != 0:
        print(out[-3000:])
        sys.exit("configure failed")
    started = time.time()
    code, out = run(make, source, args.build_timeout * 4, env)
    if code != 0:
        print(out[-3000:])
        sys.exit("the unmutated tree does not build")
    code, out = run(test, source, args.test_timeout)
    if code != 0:
        print(out[-3000:])
        sys.exit("the unmutated tree fails its tests: nothing to learn from mutants")
    print(f"baseline built and passed in {time.time() - started:.0f} s", flush=True)

    # SIGTERM as Ctrl-C: the mutated file is restored and the summary of what ran is printed.
    # (SIGINT too: a shell starts background jobs with it ignored.)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    summary = []
    interrupted = False
    for path, (lines, sample, total) in chosen.items():
        if interrupted:
            break
        target = os.path.join(source, path)
        killed, survived, broken = [], [], []
        try:
            for index, mutant in enumerate(sample, start=1):
                t0 = time.time()
                with open(target, "w") as f:
                    f.writelines(apply(mutant, lines))
                code, _ = run(make, source, args.build_timeout, env)
                if code != 0:
                    broken.append(mutant)
                    verdict = "does not compile"
                else:
                    code, _ = run(test, source, args.test_timeout)
                    if code == 0:
                        survived.append(mutant)
                        verdict = "SURVIVED"
                    else:
                        killed.append(mutant)
                        verdict = "killed" if code is not None else "killed (timeout)"
                print(f"[{index}/{len(sample)}] {verdict} ({time.time() - t0:.0f} s): "
                      f"{mutant.describe(lines[mutant.line - 1])}", flush=True)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with open(target, "w") as f:
                f.writelines(lines)
        summary.append((path, total, killed, survived, broken, lines))
    if not interrupted:
        # Leave the build matching the unmutated tree for the next run.
        run(make, source, args.build_timeout, env)

    print("\n== mutation summary ==" + (" (interrupted: the mutants that ran)" if interrupted else ""))
    for path, total, killed, survived, broken, lines in summary:
        compiled = len(killed) + len(survived)
        rate = 100.0 * len(killed) / compiled if compiled else 0.0
        print(f"{path}: {len(killed)} killed, {len(survived)} survived of {compiled} compiled "
              f"mutants ({rate:.0f} % killed); {len(broken)} did not compile; "
              f"{total} possible")
        for m in survived:
            print("  survived: " + m.describe(lines[m.line - 1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
