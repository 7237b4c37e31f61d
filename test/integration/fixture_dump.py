# SPDX-License-Identifier: Apache-2.0
# -*- coding: ascii -*-
"""Target process for the `pyflameX.Y dump` integration tests.

Runs unchanged on Python 2.7 and 3.6 ... 3.15.  It parks threads in known
stacks, then writes ONE line of JSON describing them (the readiness signal)
to the file descriptor given by --ready-fd (or the path given by --ready, e.g.
a FIFO) and blocks until its stdin reaches EOF or it is killed.

Threads (role: stack, innermost first):
  main       idle_inner -> idle_outer -> main -> <module>; blocked in os.read(0)
  busy       Outer.Inner.method (spins on one line) -> busy_gen (a resumed
             generator) -> <lambda> -> busy_nested -> busy_entry -> threading
  recursion  recurse x 500 -> recursion_entry -> threading; blocked on a lock
  unicode    3.x: three functions with latin-1, UCS-2 and UCS-4 names (exec'd
             from a string) -> call_through -> unicode_entry -> threading;
             2.7: ascii_block -> call_through -> ...; blocked on a lock.
             call_through is defined in a copy of this file that the test puts
             in a directory with a non-ASCII name (--moddir) and that is
             imported from there, so its frame's filename is non-ASCII.

The expected stacks in the readiness line are computed here, from the code
objects (co_name, co_qualname, co_filename) and from `# MARK:name` comments
(the expected line of a frame is the line carrying its marker).  Before
announcing, the fixture compares them with what sys._current_frames() sees
and lists any difference in "selfcheck_errors" (empty when all is well).
Frames below the fixture's own (threading's bootstrap) are taken from
sys._current_frames() and marked "kind": "threading".

Keep this file ASCII, without f-strings or other post-2.7 syntax.
"""
from __future__ import print_function

import argparse
import json
import os
import re
import sys
import threading
import time

PY2 = sys.version_info[0] == 2
HAS_QUALNAME = sys.version_info >= (3, 11)
RECURSION_DEPTH = 500
START_TIMEOUT = 30.0
SELFCHECK_TIMEOUT = 10.0
MAX_ERRORS = 20
MODULE_NAME = "pyflame_fixture_mod"
UNICODE_FILENAME = "<pyflame-fixture-unicode>"
MARK_RE = re.compile(r"#\s*MARK:(\w+)")

# Three functions whose names exercise the three PEP 393 string kinds.  The
# last name is spelt with MATHEMATICAL FRAKTUR letters, which NFKC (applied to
# identifiers by the compiler) folds to ASCII "func"; its suffix (DESERET
# SMALL LETTER LONG I, CJK EXTENSION B U+20000) survives NFKC, so co_name
# stays a UCS-4 string: "func_\U00010428\U00020000".
UNICODE_SOURCE = (
    u"def funci\u00f3n_\u00f1(ctx):\n"
    u"    \u95a2\u6570(ctx)  # MARK:u_latin1\n"
    u"\n"
    u"def \u95a2\u6570(ctx):\n"
    u"    \U0001d523\U0001d532\U0001d52b\U0001d520_\U00010428\U00020000(ctx)  # MARK:u_ucs2\n"
    u"\n"
    u"def \U0001d523\U0001d532\U0001d52b\U0001d520_\U00010428\U00020000(ctx):\n"
    u"    ctx.arrived('unicode')\n"
    u"    ctx.block_lock.acquire()  # MARK:u_ucs4\n"
    u"\n"
    u"FUNCTIONS = [funci\u00f3n_\u00f1, \u95a2\u6570,"
    u" \U0001d523\U0001d532\U0001d52b\U0001d520_\U00010428\U00020000]\n"
)
UNICODE_SOURCE_NAMES = [
    u"funci\u00f3n_\u00f1",
    u"\u95a2\u6570",
    u"\U0001d523\U0001d532\U0001d52b\U0001d520_\U00010428\U00020000",
]


def text(value):
    """A native str / bytes value as unicode (2.7 keeps names as bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def native_id():
    """The Linux TID of the calling thread, or None if it cannot be had."""
    get = getattr(threading, "get_native_id", None)
    if get is not None:
        return get()
    try:
        import ctypes
        import platform
        number = {"x86_64": 186, "aarch64": 178, "i686": 224}.get(platform.machine())
        if number is None:
            return None
        return int(ctypes.CDLL(None, use_errno=True).syscall(number))
    except Exception:  # no ctypes (minimal installs): the test copes
        return None


def code_of(function):
    return function.__code__


def nested_code(code, name):
    """The code object of function NAME defined directly inside CODE."""
    for const in code.co_consts:
        if hasattr(const, "co_name") and const.co_name == name:
            return const
    raise LookupError("no nested code %r in %r" % (name, code.co_name))


def bottom_code(frame):
    while frame.f_back is not None:
        frame = frame.f_back
    return frame.f_code


def marker_lines(source):
    lines = {}
    for number, line in enumerate(source.splitlines(), 1):
        for name in MARK_RE.findall(line):
            if name in lines:
                raise ValueError("marker %s appears twice" % name)
            lines[name] = number
    return lines


# ------------------------------------------------------------------ threads


class Outer(object):
    class Inner(object):
        def method(self, ctx):
            ctx.arrived("busy")
            while True: pass  # MARK:busy_spin


def busy_gen(ctx):
    yield None
    Outer.Inner().method(ctx)  # MARK:busy_gen
    yield None


def busy_entry(ctx):
    def busy_nested():
        gen = busy_gen(ctx)
        next(gen)
        resume = lambda: next(gen)  # MARK:busy_lambda
        resume()  # MARK:busy_nested
    busy_nested()  # MARK:busy_entry


def recurse(ctx, depth):
    if depth > 1:
        recurse(ctx, depth - 1)  # MARK:recurse_call
        return
    ctx.arrived("recursion")
    ctx.block_lock.acquire()  # MARK:recurse_block


def recursion_entry(ctx):
    recurse(ctx, RECURSION_DEPTH)  # MARK:recursion_entry


def call_through(function, ctx):
    # What runs is ctx.module's copy, from the non-ASCII directory.
    function(ctx)  # MARK:call_through


def ascii_block(ctx):
    # 2.7 stand-in for the non-ASCII-named functions.
    ctx.arrived("unicode")
    ctx.block_lock.acquire()  # MARK:ascii_block


def unicode_entry(ctx):
    ctx.module.call_through(ctx.unicode_first, ctx)  # MARK:unicode_entry


def idle_outer(ctx):
    def idle_inner():
        ctx.announce()  # MARK:main_announce
        while os.read(0, 4096): pass  # MARK:main_read
        os._exit(0)
    idle_inner()  # MARK:idle_outer


# ------------------------------------------------------------- the context


class Context(object):
    def __init__(self, args):
        self.args = args
        self.block_lock = threading.Lock()
        self.block_lock.acquire()  # never released: acquiring it blocks in C
        self.roles = ["busy", "recursion", "unicode"]
        self.events = dict((role, threading.Event()) for role in self.roles)
        self.ids = {}  # role -> (ident, native id)
        self.sources = {}  # co_filename -> marker lines
        self.unicode_info = None

        sys.path.insert(0, args.moddir)
        self.module = __import__(MODULE_NAME)
        if PY2:
            self.unicode_first = ascii_block
            self.unicode_functions = [ascii_block]
        else:
            namespace = {}
            exec(compile(UNICODE_SOURCE, UNICODE_FILENAME, "exec"), namespace)
            self.sources[UNICODE_FILENAME] = marker_lines(UNICODE_SOURCE)
            self.unicode_functions = list(namespace["FUNCTIONS"])
            self.unicode_first = self.unicode_functions[0]

    def arrived(self, role):
        self.ids[role] = (threading.current_thread().ident, native_id())
        self.events[role].set()

    def line(self, code, marker):
        filename = code.co_filename
        if filename not in self.sources:
            with open(filename, "rb") as f:
                self.sources[filename] = marker_lines(f.read().decode("utf-8"))
        return self.sources[filename][marker]

    # Expected fixture frames per role, innermost first: (code, marker).
    def chains(self):
        busy_nested = nested_code(code_of(busy_entry), "busy_nested")
        chains = {
            "busy": [
                (code_of(Outer.Inner.__dict__["method"]), "busy_spin"),
                (code_of(busy_gen), "busy_gen"),
                (nested_code(busy_nested, "<lambda>"), "busy_lambda"),
                (busy_nested, "busy_nested"),
                (code_of(busy_entry), "busy_entry"),
            ],
            "recursion": [(code_of(recurse), "recurse_block")]
            + [(code_of(recurse), "recurse_call")] * (RECURSION_DEPTH - 1)
            + [(code_of(recursion_entry), "recursion_entry")],
        }
        if PY2:
            innermost = [(code_of(ascii_block), "ascii_block")]
        else:
            u1, u2, u4 = [code_of(f) for f in self.unicode_functions]
            innermost = [(u4, "u_ucs4"), (u2, "u_ucs2"), (u1, "u_latin1")]
        chains["unicode"] = innermost + [
            (code_of(self.module.call_through), "call_through"),
            (code_of(unicode_entry), "unicode_entry"),
        ]
        return chains

    def frame_record(self, code, line, kind):
        return {
            "function": text(code.co_name),
            "qualname": text(code.co_qualname) if HAS_QUALNAME else None,
            "filename": text(code.co_filename),
            "line": line,
            "kind": kind,
        }

    def describe_thread(self, role, chain, frame, errors):
        """Expected frames of one thread; compares them with FRAME's chain."""
        actual = []
        while frame is not None:
            actual.append(frame)
            frame = frame.f_back
        records = []
        for index, (code, marker) in enumerate(chain):
            expected_line = self.line(code, marker)
            records.append(self.frame_record(code, expected_line, "fixture"))
            if index >= len(actual):
                errors.append("%s: frame %d (%s) missing" % (role, index, code.co_name))
                continue
            got = actual[index]
            if role == "main" and index == 0:
                expected_line = self.line(code, "main_announce")
            if got.f_code is not code or got.f_lineno != expected_line:
                errors.append("%s: frame %d is %s:%s, expected %s:%s"
                              % (role, index, got.f_code.co_name, got.f_lineno,
                                 code.co_name, expected_line))
        for got in actual[len(chain):]:
            if role == "main":
                errors.append("main: unexpected frame %s" % got.f_code.co_name)
            elif not text(got.f_code.co_filename).endswith("threading.py"):
                errors.append("%s: bottom frame %s is in %s, not threading.py"
                              % (role, got.f_code.co_name, got.f_code.co_filename))
            records.append(self.frame_record(got.f_code, got.f_lineno, "threading"))
        return records

    def describe(self, main_frame):
        chains = self.chains()
        deadline = time.time() + SELFCHECK_TIMEOUT
        # A thread has announced itself just before its blocking call or
        # spin loop; poll until each sits on its final line.
        while True:
            errors = []
            threads = []
            frames = sys._current_frames()
            for role in self.roles:
                ident, nid = self.ids[role]
                records = self.describe_thread(role, chains[role], frames.get(ident), errors)
                threads.append({"role": role, "thread_id": ident, "native_id": nid,
                                "idle": role != "busy", "frames": records})
            if not errors or time.time() > deadline:
                break
            time.sleep(0.01)

        outer = code_of(idle_outer)
        main_chain = [
            (nested_code(outer, "idle_inner"), "main_read"),
            (outer, "idle_outer"),
            (code_of(main), "main_call"),
            (bottom_code(main_frame), "module_main"),
        ]
        records = self.describe_thread("main", main_chain, main_frame, errors)
        # The main thread's TID is the pid, even where native_id() is unknown.
        threads.insert(0, {"role": "main", "thread_id": threading.current_thread().ident,
                           "native_id": os.getpid(), "idle": True, "frames": records})
        errors.extend(self.check_unicode())
        if len(errors) > MAX_ERRORS:
            errors[MAX_ERRORS:] = ["... and %d more" % (len(errors) - MAX_ERRORS)]
        return threads, errors

    def check_unicode(self):
        errors = []
        filename = text(code_of(self.module.call_through).co_filename)
        if not any(ord(c) > 0x7f for c in os.path.dirname(filename)):
            errors.append("module %s is not in a non-ASCII directory" % filename)
        if PY2:
            return errors
        names = [f.__code__.co_name for f in self.unicode_functions]
        limits = [(0x80, 0xff), (0x100, 0xffff), (0x10000, 0x10ffff)]
        for name, (low, high) in zip(names, limits):
            if not low <= max(ord(c) for c in name) <= high:
                errors.append("co_name %r is not in the intended string kind" % name)
        self.unicode_info = {"source_names": UNICODE_SOURCE_NAMES, "co_names": names}
        return errors

    def announce(self):
        """Called by the main thread, which then blocks in os.read(0)."""
        threads, errors = self.describe(sys._getframe(1))
        doc = {
            "pid": os.getpid(),
            "python_version": "%d.%d.%d" % sys.version_info[:3],
            "sys_version": sys.version,
            "has_qualname": HAS_QUALNAME,
            "recursion_depth": RECURSION_DEPTH,
            "module_filename": text(code_of(self.module.call_through).co_filename),
            "unicode": self.unicode_info,
            "selfcheck_errors": errors,
            "threads": threads,
        }
        data = (json.dumps(doc, sort_keys=True) + "\n").encode("ascii")
        if self.args.ready is not None:
            fd = os.open(self.args.ready, os.O_WRONLY)
        else:
            fd = self.args.ready_fd
        while data:
            data = data[os.write(fd, data):]
        os.close(fd)


def start_thread(name, target, ctx):
    thread = threading.Thread(target=target, args=(ctx,), name=name)
    thread.daemon = True
    thread.start()
    return thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--ready-fd", type=int, help="write the readiness line to this fd")
    where.add_argument("--ready", help="write the readiness line to this path (e.g. a FIFO)")
    parser.add_argument("--moddir", required=True,
                        help="directory holding %s.py (a copy of this file)" % MODULE_NAME)
    args = parser.parse_args()
    ctx = Context(args)
    start_thread("pyflame-busy", busy_entry, ctx)
    start_thread("pyflame-recurse", recursion_entry, ctx)
    start_thread("pyflame-unicode", unicode_entry, ctx)
    for role in ctx.roles:
        if not ctx.events[role].wait(START_TIMEOUT):
            sys.stderr.write("fixture_dump: thread %s did not start\n" % role)
            os._exit(1)
    idle_outer(ctx)  # MARK:main_call


if __name__ == "__main__":
    main()  # MARK:module_main
