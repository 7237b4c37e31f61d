#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration test of `pyflameX.Y dump --locals` against one interpreter.

    test_locals.py --bin-dir DIR --interp NAME [--manifest PATH]

Starts fixture_locals.py under interpreter NAME (a manifest row), which
stops inside inner <- middle <- closure <- outer with known arguments and
locals of every kind (arg, local, cell, free) and every type dump shows,
dumps it with --locals --json (and in text) and compares every variable of
those four frames exactly: name, kind, type and repr, in order.  2.7 has
no keyword-only arguments and no bytes apart from str: its fixture makes
`key` an ordinary argument and `text` a byte string, and has no `data`.
Exit 0 pass, 1 fail, 77 skip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import List, Optional, Tuple

from pyflame_test import (EXIT_OK, READY_TIMEOUT, Failure, Interpreter, Target,
                          find_interpreter, log, main_wrapper, profiler_path, read_line, run,
                          stopped_tasks, wait_for_syscall, DEFAULT_MANIFEST)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixture_locals.py")

# What `dump --locals` elides: more than 40 digits, more than 80 characters.
HUGE_DIGITS = "1" + "0" * 45 + "12345"


def expected(py2: bool, ids: dict) -> dict:
    """Per function, its variables as (name, kind, type, repr), in order."""
    text_type = "str"
    if py2:
        text = ("text", "local", "str", "'it\\'s \"q\"\\t\\xc3\\xa9\\n'")
    else:
        text = ("text", "local", "str", "'it\\'s \"q\"\\t\u00e9\u65e5\\n'")
    outer = [
        ("a", "arg", "int", "1"),
        ("b", "arg", text_type, "'bee'"),
        ("args", "arg", "tuple", "<tuple len=2>"),
        ("kwargs", "arg", "dict", "<dict len=1>"),
        ("none", "local", "NoneType", "None"),
        ("yes", "local", "bool", "True"),
        ("no", "local", "bool", "False"),
        ("small", "local", "int", "-7"),
        ("huge", "local", "long" if py2 else "int",
         "-%s... (%d digits)" % (HUGE_DIGITS[:40], len(HUGE_DIGITS))),
        ("fl", "local", "float", "2.5"),
        ("tiny", "local", "float", "1e-05"),
        text,
    ]
    if not py2:
        outer.append(("data", "local", "bytes", "b'\\x00ab\\xff\"'"))
    outer += [
        # A 2.7 str is a byte string: its length is in bytes.
        ("long_text", "local", "str", "'%s'... (100 %s)" % ("x" * 80, "bytes" if py2 else "chars")),
        ("lst", "local", "list", "<list len=3>"),
        ("tup", "local", "tuple", "<tuple len=2>"),
        ("dct", "local", "dict", "<dict len=4>"),
        ("st", "local", "set", "<set len=5>"),
        ("fs", "local", "frozenset", "<frozenset len=1>"),
        ("obj", "local", "Thing", "<Thing at %#x>" % ids["obj"]),
        ("closure", "local", "function", "<function at %#x>" % ids["closure"]),
        ("captured", "cell", "list", "<list len=2>"),
    ]
    return {
        "inner": [("m", "arg", "float", "0.1")],
        "middle": [
            ("c", "arg", "list", "<list len=2>"),
            ("x", "arg", "int", "5"),
            ("key", "arg", "int", "6"),
            ("m", "local", "float", "0.1"),
        ],
        "closure": [
            ("x", "arg", "int", "5"),
            ("local_in_closure", "local", "int", "6"),
            ("captured", "free", "list", "<list len=2>"),
        ],
        "outer": outer,
    }


def start(interp: Interpreter) -> Tuple[Target, dict]:
    """Starts the fixture; returns it, blocked reading stdin, and its ids."""
    tmpdir = interp.temp_dir()
    try:
        fixture = os.path.join(tmpdir, "fixture_locals.py")
        shutil.copyfile(FIXTURE, fixture)
        os.chmod(tmpdir, 0o755)
        rfd, wfd = os.pipe()
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    try:
        target = Target(interp, [interp.inside_path(fixture), "--ready-fd", str(wfd)], tmpdir,
                        pass_fds=[wfd])
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    try:
        ids = json.loads(read_line(rfd, target, READY_TIMEOUT, "fixture under %s" % interp.name))
        why = wait_for_syscall(target.pid, target.pid, "read", 0, READY_TIMEOUT)
        if why:
            raise Failure("fixture under %s never blocked reading stdin: %s" % (interp.name, why))
    except BaseException:
        target.close()
        raise
    finally:
        os.close(rfd)
    return target, ids


def compare(function: str, want: List[tuple], got) -> List[str]:
    if not isinstance(got, list):
        return ["%s: locals is %r, expected a list" % (function, got)]
    problems = []
    got_rows = []
    for v in got:
        if not isinstance(v, dict) or set(v) != {"name", "kind", "type", "repr"}:
            problems.append("%s: variable %r is not {name, kind, type, repr}" % (function, v))
            continue
        got_rows.append((v["name"], v["kind"], v["type"], v["repr"]))
    if got_rows != want:
        lines = ["%s: variables differ (want | got):" % function]
        for i in range(max(len(want), len(got_rows))):
            w = want[i] if i < len(want) else None
            g = got_rows[i] if i < len(got_rows) else None
            lines.append("  %s %r | %r" % ("  " if w == g else "!=", w, g))
        problems.append("\n".join(lines))
    return problems


def dump_locals(profiler: str, target: Target, json_output: bool):
    argv = [profiler, "dump", "-p", str(target.pid), "--locals"]
    if json_output:
        argv.append("--json")
    result = run(argv)
    if result.returncode != EXIT_OK:
        raise Failure("dump --locals failed: %s\n%s" % (result.status(), result.describe()))
    if not target.alive():
        raise Failure("target died during the dump\n%s" % result.describe())
    stopped = stopped_tasks(target.pid)
    if stopped:
        raise Failure("target left stopped: %s\n%s" % (stopped, result.describe()))
    return result


def check(interp: Interpreter, profiler: str) -> List[str]:
    target, ids = start(interp)
    with target:
        want = expected(interp.minor == "2.7", ids)
        result = dump_locals(profiler, target, json_output=True)
        try:
            doc = json.loads(result.stdout.decode("utf-8"))
        except ValueError as e:
            return ["dump output is not JSON: %s\n%s" % (e, result.describe())]
        threads = doc.get("threads") or []
        main = next((t for t in threads if any(
            f.get("function") == "inner" for f in t.get("frames") or [])), None)
        if main is None:
            return ["no thread has the frame inner\n%s" % result.describe()]
        frames = [f for f in main["frames"] if f.get("kind") == "python"]
        names = [f.get("function") for f in frames]
        problems = []
        if names[:4] != ["inner", "middle", "closure", "outer"]:
            problems.append("frames %r, expected inner, middle, closure, outer first" % names)
        for f in frames:
            function = f.get("function")
            if "locals" not in f:
                problems.append("%s: no \"locals\" key" % function)
            elif function in want:
                problems += compare(function, want[function], f["locals"])
            elif function == "<module>" and f["locals"] != []:
                problems.append("<module>: locals %r, expected [] (not fast locals)" % f["locals"])
        if problems:
            problems.append("JSON dump was:\n%s" % result.describe())

        # Text: each variable under its frame, "kind name = repr".
        text = dump_locals(profiler, target, json_output=False).stdout_text
        for function, rows in want.items():
            for name, kind, _, repr_ in rows:
                line = "        %-5s %s = %s" % (kind, name, repr_)
                if line not in text.splitlines():
                    problems.append("text dump lacks the line %r (%s)\n%s" % (line, function, text))
                    break
        # Without --locals, no variables.
        plain = run([profiler, "dump", "-p", str(target.pid), "--json"])
        if plain.returncode == EXIT_OK and b'"locals"' in plain.stdout:
            problems.append("dump without --locals shows locals")
        return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="directory holding pyflameX.Y")
    parser.add_argument("--interp", required=True, help="interpreter name (manifest row)")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST)
    args = parser.parse_args()
    interp = find_interpreter(args.manifest, args.interp)
    profiler = profiler_path(args.bin_dir, interp.minor)
    problems = check(interp, profiler)
    what = "pyflame%s dump --locals of %s" % (interp.minor, interp.name)
    if problems:
        log("FAIL %s" % what)
        for p in problems:
            log("  - " + p.replace("\n", "\n    "))
        return 1
    log("PASS %s" % what)
    return 0


if __name__ == "__main__":
    main_wrapper(main)
