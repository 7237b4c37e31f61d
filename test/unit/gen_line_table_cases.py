#!/usr/bin/env python
# SPDX-License-Identifier: Apache-2.0
"""Generates test/unit/line_table_cases.inc for test_line_table.cc.

Every expectation comes from the interpreter itself: for each code object we
record its raw line table (co_lnotab before 3.10, co_linetable from 3.10 on),
co_firstlineno, the length of co_code, and, for every byte offset from -2 to
a little past the end, the line CPython's own PyCode_Addr2Line returns
(called through ctypes). That answer is cross-checked against the Python-level
API: dis.findlinestarts() before 3.10 (each offset belongs to the latest start
at or before it), co_lines() from 3.10 on. The generator stops on any
disagreement, so the .inc never encodes a guess.

Besides compiled snippets, some tables are hand-built (to reach encodings the
compiler of that version never emits, e.g. negative line increments on 3.6 /
3.7, or every location-table entry kind) and installed into a code object
with types.CodeType / code.replace(); CPython then decodes them for us.

Usage (from the repository root; the script is Python 2.7 and 3 compatible):
    python3 test/unit/gen_line_table_cases.py --all [PYTHON ...] \
        > test/unit/line_table_cases.inc
The checked-in file was made with every pyenv interpreter plus
    I=/var/cache/pyflame/interpreters
    /usr/bin/python3.14@$I/sid-3.14/root /usr/bin/python3.15@$I/sid-3.15/root
With no PYTHON arguments, --all uses every ~/.pyenv/versions/*/bin/python.
A PYTHON of the form PATH@ROOT runs PATH inside the chroot ROOT (the Debian
unstable 3.14 and 3.15 of test/interpreters, whose libc is newer than the
host's): the script is copied into ROOT/tmp and, if ROOT has no libffi (ctypes
needs it; the test chroots leave it out), the host's libffi.so.8 with it.
Run without --all, it prints the cases of the interpreter running it.
"""

from __future__ import print_function

import ctypes
import dis
import glob
import os
import re
import subprocess
import sys
import types

VERSION = sys.version_info[:2]

# How many bytes past the end of co_code to query, to pin down what each
# version answers there (the lnotab keeps its last line; 3.10+ says -1).
PAST_END = 8


def table_format():
    if VERSION < (3, 6):
        return "PYFLAME_LNOTAB_UNSIGNED"
    if VERSION < (3, 10):
        return "PYFLAME_LNOTAB_SIGNED"
    if VERSION < (3, 11):
        return "PYFLAME_LINETABLE_310"
    return "PYFLAME_LOCATION_TABLE"


def raw_table(code):
    if VERSION < (3, 10):
        return bytearray(code.co_lnotab)
    return bytearray(code.co_linetable)


_addr2line = ctypes.pythonapi.PyCode_Addr2Line
_addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
_addr2line.restype = ctypes.c_int


def cpython_line(code, offset):
    """PyCode_Addr2Line(code, offset) as CPython computes it; None for -1."""
    line = _addr2line(code, offset)
    return None if line == -1 else line


def api_lines(code):
    """Line per byte offset in [0, len(co_code)) from the Python-level API."""
    size = len(code.co_code)
    lines = [None] * size
    if VERSION >= (3, 10):
        for start, end, line in code.co_lines():
            for offset in range(max(start, 0), min(end, size)):
                lines[offset] = line
        return lines
    starts = list(dis.findlinestarts(code))
    for i, (start, line) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else size
        for offset in range(start, min(end, size)):
            lines[offset] = line
    return lines


def expected_runs(code, cross_check):
    """[(start, end, line)] covering byte offsets -2 .. len(co_code) + PAST_END."""
    size = len(code.co_code)
    api = api_lines(code) if cross_check else None
    runs = []
    for offset in range(-2, size + PAST_END):
        line = cpython_line(code, offset)
        if api is not None and 0 <= offset < size and api[offset] != line:
            raise SystemExit("%s: %s offset %d: PyCode_Addr2Line says %r, the API says %r"
                             % (sys.version.split()[0], code.co_name, offset, line, api[offset]))
        if runs and runs[-1][2] == line and runs[-1][1] == offset:
            runs[-1][1] = offset + 1
        else:
            runs.append([offset, offset + 1, line])
    return runs


def walk_code(code):
    """The code object and all code objects nested in its constants, in order."""
    out = []
    stack = [code]
    while stack:
        c = stack.pop()
        out.append(c)
        nested = [k for k in c.co_consts if isinstance(k, types.CodeType)]
        stack.extend(reversed(nested))
    return out


# --- Compiled snippets -------------------------------------------------------

def blank(n):
    return "\n" * n


def snippets():
    s = []
    s.append(("simple",
              "def simple(a, b):\n"
              "    x = a + b\n"
              "    y = x * 2\n"
              "\n"
              "\n"
              "    z = y - 1\n"
              "    return z\n"))
    s.append(("loops",
              "def loops(n):\n"
              "    total = 0\n"
              "    for i in range(n):\n"
              "        if i % 2:\n"
              "            continue\n"
              "        elif i > 10:\n"
              "            break\n"
              "        else:\n"
              "            total += i\n"
              "    while n > 0:\n"
              "        n -= 1\n"
              "        if n == 3:\n"
              "            break\n"
              "    else:\n"
              "        total = -1\n"
              "    return total\n"))
    # A forward jump of more than 255 lines, then a loop whose back edge
    # jumps ~200 lines up (3.10+ re-test the condition on the `while` line).
    s.append(("far_jumps",
              "def far_jumps(a):\n"
              "    x = 1\n" + blank(300) +
              "    y = 2\n"
              "    while a:\n"
              "        a -= 1\n" + blank(200) +
              "        if a: break\n"
              "    return x + y\n"))
    # Lines exactly around the byte-sized and split limits apart.
    body = "def gaps():\n    v0 = 0\n"
    for i, gap in enumerate([126, 127, 128, 129, 254, 255, 256, 510]):
        body += blank(gap - 1) + "    v%d = %d\n" % (i + 1, i + 1)
    body += "    return v1\n"
    s.append(("gaps", body))
    # co_firstlineno is the decorator, the body starts far below it.
    s.append(("first_line_far",
              "@decorator(\n"
              "    1,\n"
              ")\n"
              "def first_line_far(\n"
              "    a,\n"
              "    b,\n"
              "):\n"
              "    '''Doc\n"
              "    string.'''\n"
              "    # comment\n" + blank(150) +
              "    return a + b\n"))
    # One line compiling to far more than 255 bytes of code (address
    # increments split over several entries) with columns beyond 127.
    s.append(("long_line",
              "def long_line(a):\n"
              "    return [" + ", ".join("a + %d" % i for i in range(120)) + "]\n"))
    # Evaluation order that goes back up the source (negative deltas from
    # 3.8 on), by small and by large amounts.
    s.append(("backwards",
              "def backwards(a, b, c):\n"
              "    x = (a\n"
              "         if b\n"
              "         else c)\n"
              "    y = g(\n" + blank(150) +
              "        a,\n"
              "        b,\n"
              "    ).m(\n" + blank(130) +
              "        c)\n"
              "    for i in (a,\n" + blank(140) +
              "              b):\n"
              "        x += i\n"
              "    return x, y\n"))
    # Exception handlers and cleanups: 3.10 marks some instructions with no
    # line, 3.11+ with "no location" (code 15).
    s.append(("handlers",
              "def handlers(a):\n"
              "    try:\n"
              "        a()\n"
              "    except ValueError as e:\n"
              "        return e\n"
              "    except (TypeError, KeyError):\n"
              "        pass\n"
              "    finally:\n"
              "        a = None\n"
              "    with open(a) as fh:\n"
              "        fh.read()\n"
              "    try:\n"
              "        pass\n"
              "    finally:\n"
              "        return a\n"))
    s.append(("small",
              "def empty():\n"
              "    pass\n"
              "\n"
              "lam = lambda: 0\n"
              "\n"
              "def gen(n):\n"
              "    for i in range(n):\n"
              "        yield i\n"
              "\n"
              "class K(object):\n"
              "    x = 1\n"
              "    def m(self):\n"
              "        return [y for y in range(self.x)]\n"))
    s.append(("empty_module", ""))
    if VERSION >= (3, 6):
        s.append(("async",
                  "async def coro(a):\n"
                  "    async with a as b:\n"
                  "        await b\n"
                  "    async for x in a:\n"
                  "        print(x)\n"
                  "    return f'{a}'\n"))
    return s


# --- Hand-built tables -------------------------------------------------------

def nop_code(size):
    """size bytes of NOPs (never executed; only its length matters)."""
    nop = dis.opmap["NOP"]
    if VERSION < (3, 6):
        return bytes(bytearray([nop] * size))
    return bytes(bytearray([nop, 0] * (size // 2)))


def with_table(template, code_size, first_line, table):
    code = nop_code(code_size)
    table = bytes(bytearray(table))
    if VERSION >= (3, 10):
        return template.replace(co_code=code, co_linetable=table, co_firstlineno=first_line)
    if VERSION >= (3, 8):
        return template.replace(co_code=code, co_lnotab=table, co_firstlineno=first_line)
    t = template
    head = [t.co_argcount]
    if VERSION >= (3, 0):
        head.append(t.co_kwonlyargcount)
    return types.CodeType(*(head + [t.co_nlocals, t.co_stacksize, t.co_flags, code, t.co_consts,
                                    t.co_names, t.co_varnames, t.co_filename, t.co_name,
                                    first_line, table, t.co_freevars, t.co_cellvars]))


def s8(v):
    assert -128 <= v <= 127
    return v & 0xff


def varint(v):
    """Objects/locations.md varint: 6-bit chunks, bit 6 = more follow."""
    out = []
    while v >= 64:
        out.append((v & 0x3f) | 0x40)
        v >>= 6
    out.append(v)
    return out


def svarint(v):
    return varint(((-v) << 1) | 1 if v < 0 else v << 1)


def entry(code, units):
    assert 0 <= code <= 15 and 1 <= units <= 8
    return [0x80 | (code << 3) | (units - 1)]


def loc_short(units, column, end_column):
    return entry(column >> 3, units) + [((column & 7) << 4) | (end_column - column)]


def loc_one_line(units, delta, column, end_column):
    return entry(10 + delta, units) + [column, end_column]


def loc_no_columns(units, delta):
    return entry(13, units) + svarint(delta)


def loc_long(units, delta, end_delta, column, end_column):
    return entry(14, units) + svarint(delta) + varint(end_delta) + varint(column + 1) + \
        varint(end_column + 1)


def loc_none(units):
    return entry(15, units)


def crafted():
    """(name, code_size, first_line, table) built for this version's format."""
    fmt = table_format()
    out = []
    if fmt == "PYFLAME_LNOTAB_UNSIGNED":
        # Line increments >= 128 are positive here (2.7 - 3.5); 3.6+ would
        # read them as negative.
        out.append(("unsigned_big_increments", 40, 10,
                    [0, 1, 6, 200, 4, 255, 0, 255, 0, 3, 2, 128, 255, 0, 0, 129, 3, 1]))
        out.append(("unsigned_first_entry_nonzero", 30, 7, [5, 2, 5, 0, 5, 250]))
    elif fmt == "PYFLAME_LNOTAB_SIGNED":
        # Negative increments, including (0, -128) chains as 3.6 - 3.9 emit
        # for jumps up of more than 128 lines.
        out.append(("signed_negative", 40, 500,
                    [0, 1, 6, s8(-128), 0, s8(-128), 0, s8(-5), 4, 127, 0, 127, 2, s8(-1),
                     4, s8(-127), 255, 0, 0, 3, 2, 0x80]))
        out.append(("signed_all_bytes", 300, 10000,
                    [v for i in range(0, 256, 3) for v in (1, i)]))
    elif fmt == "PYFLAME_LINETABLE_310":
        # -128 "no line" pairs in the middle, zero-width pairs carrying line
        # jumps (+-127 chains), 254-byte split ranges.
        table = [2, 0, 0, 127, 0, 127, 4, 10, 6, s8(-128), 0, s8(-127), 2, s8(-5), 254, 1,
                 254, 0, 2, s8(-128), 4, 3, 0, s8(-128), 6, 0]
        out.append(("310_no_line_and_splits", sum(table[0::2]), 20, table))
        out.append(("310_starts_with_no_line", 12, 5, [4, s8(-128), 4, 2, 4, s8(-128)]))
    else:
        table = (loc_none(1) + loc_no_columns(3, 5) + loc_short(2, 4, 9) +
                 loc_one_line(8, 2, 100, 127) + loc_one_line(1, 1, 0, 0) +
                 loc_one_line(1, 0, 5, 6) + loc_long(4, -3, 2, 130, 140) + loc_none(8) +
                 loc_no_columns(1, 1000) + loc_long(2, -999, 0, 1, 2) +
                 loc_no_columns(1, 70000) + loc_no_columns(1, -70000) +
                 loc_no_columns(2, 100000000) + loc_long(1, -100000000, 300, 4000, 5) +
                 loc_short(1, 79, 79) + loc_no_columns(1, -1) + loc_none(1))
        units = 1 + 3 + 2 + 8 + 1 + 1 + 4 + 8 + 1 + 2 + 1 + 1 + 2 + 1 + 1 + 1 + 1
        out.append(("locations_every_kind", units * 2, 50, table))
        out.append(("locations_only_none", 6, 3, loc_none(2) + loc_none(1)))
    return out


# --- Output ------------------------------------------------------------------

def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def emit(python, name, code, cross_check, out):
    table = raw_table(code)
    runs = expected_runs(code, cross_check)
    # Negative offsets: every CPython answers co_firstlineno.
    for offset in (-1, -2):
        assert cpython_line(code, offset) == code.co_firstlineno
    byte_lines = []
    for i in range(0, len(table), 16):
        byte_lines.append("      " + ", ".join("0x%02x" % b for b in table[i:i + 16]) + ",")
    run_text = ", ".join("{%d, %d, %s}" % (s, e, "kNoLine" if l is None else l)
                         for s, e, l in runs)
    table_text = "{\n%s\n    }" % "\n".join(byte_lines) if byte_lines else "{}"
    out.append("  {%s, %s, %s, %d, %d,\n    %s,\n    {%s}},"
               % (c_string(python), c_string(name), table_format(), code.co_firstlineno,
                  len(code.co_code), table_text, run_text))


def generate():
    python = "%d.%d.%d" % sys.version_info[:3]
    out = ["  // CPython %s" % python]
    for snippet_name, source in snippets():
        module = compile(source, snippet_name + ".py", "exec")
        for code in walk_code(module):
            emit(python, "%s/%s" % (snippet_name, code.co_name), code, True, out)
    template = compile("def t(): pass", "crafted.py", "exec").co_consts[0]
    for name, size, first_line, table in crafted():
        emit(python, "crafted/" + name, with_table(template, size, first_line, table), False, out)
    return "\n".join(out) + "\n"


def version_key(path):
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def run_one(python):
    """The cases of one interpreter: PYTHON, or PATH@ROOT in a chroot."""
    if "@" not in python:
        return subprocess.check_output([python, os.path.abspath(__file__)])
    import shutil
    import tempfile
    path, root = python.split("@", 1)
    work = tempfile.mkdtemp(prefix="gen-line-table-", dir=os.path.join(root, "tmp"))
    try:
        inside = "/" + os.path.relpath(work, root)
        shutil.copy(os.path.abspath(__file__), work)
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
        if not glob.glob(os.path.join(root, "usr/lib/*/libffi.so.*")):
            host = glob.glob("/usr/lib/*/libffi.so.8")
            if not host:
                raise SystemExit("%s has no libffi and neither has the host" % root)
            shutil.copy(host[0], work)
            env["LD_LIBRARY_PATH"] = inside
        chroot = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "chroot"
        script = inside + "/" + os.path.basename(__file__)
        return subprocess.check_output([chroot, root, path, script], env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def generate_all(pythons):
    if not pythons:
        pythons = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python")),
                         key=version_key)
    parts = ["// Generated by test/unit/gen_line_table_cases.py --all; do not edit.\n"
             "// Each case: interpreter, name, format, co_firstlineno, len(co_code),\n"
             "// raw table bytes, and runs {first offset, end offset, line} of what\n"
             "// that interpreter's PyCode_Addr2Line answers for byte offsets\n"
             "// -2 .. len(co_code) + %d (kNoLine where it answers -1).\n" % PAST_END]
    for python in pythons:
        parts.append(run_one(python).decode("utf-8"))
    sys.stdout.write("".join(parts))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--all":
        generate_all(sys.argv[2:])
    else:
        sys.stdout.write(generate())


if __name__ == "__main__":
    main()
