#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the fuzz targets into test/fuzz/corpus/.

    make_corpus.py [--line-table-cases test/unit/line_table_cases.inc]

Deterministic and standard library only; rerun after changing a target's
input layout (see each fuzz_*.cc). The seeds are small, hand-built inputs
that reach each decoder's main paths: libFuzzer mutates from there.
"""

import argparse
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FORMATS = {"PYFLAME_LNOTAB_UNSIGNED": 0, "PYFLAME_LNOTAB_SIGNED": 1, "PYFLAME_LINETABLE_310": 2, "PYFLAME_LOCATION_TABLE": 3}


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------- ELF

def elf(kind="exec", symtab=True, dynsym=True):
    """A minimal x86-64 ELF: one PT_LOAD, .text/.data/.bss, symbol tables."""
    base = 0x400000 if kind == "exec" else 0
    names = [b"", b".text", b".data", b".bss", b".symtab", b".strtab", b".dynsym", b".dynstr",
             b".shstrtab"]
    shstr = b"\0".join(names) + b"\0"
    name_off = {}
    pos = 0
    for n in names:
        name_off[n] = pos
        pos += len(n) + 1
    symbols = [b"_PyRuntime", b"Py_GetVersion", b"PyCode_Type", b"interp_head"]
    strtab = b"\0" + b"\0".join(symbols) + b"\0"

    def syms(first_value):
        out = b"\0" * 24
        off = 1
        for i, s in enumerate(symbols):
            # st_name, st_info (GLOBAL OBJECT), st_other, st_shndx (.data), st_value, st_size
            out += struct.pack("<IBBHQQ", off, 0x11, 0, 2, first_value + 16 * i, 16)
            off += len(s) + 1
        return out

    text = b"\xc3" * 16
    data = b"\x00" * 64
    ehdr_size, phdr_size = 64, 56
    layout = []  # (name, bytes)
    offset = ehdr_size + phdr_size
    contents = [(b".text", text), (b".data", data)]
    if symtab:
        contents += [(b".symtab", syms(base + 0x1010)), (b".strtab", strtab)]
    if dynsym:
        contents += [(b".dynsym", syms(base + 0x1010)), (b".dynstr", strtab)]
    contents.append((b".shstrtab", shstr))
    body = b""
    placed = {}
    for name, blob in contents:
        placed[name] = (offset + len(body), len(blob))
        body += blob
        body += b"\0" * (-len(body) % 8)
    shoff = offset + len(body)
    index = {}
    shdrs = [b"\0" * 64]
    order = [b".text", b".data", b".bss"] + [n for n, _ in contents if n not in (b".text", b".data")]
    for i, n in enumerate(order):
        index[n] = i + 1
    for n in order:
        if n == b".bss":
            shdrs.append(struct.pack("<IIQQQQIIQQ", name_off[n], 8, 3, base + 0x1100, 0x1100, 0x100,
                                     0, 0, 8, 0))
            continue
        off, size = placed[n]
        typ, flags, addr, link, info, entsize = 1, 0, 0, 0, 0, 0
        if n == b".text":
            flags, addr = 6, base + off
        elif n == b".data":
            typ, flags, addr = 1, 3, base + 0x1000 + off
        elif n in (b".symtab", b".dynsym"):
            typ = 2 if n == b".symtab" else 11
            link = index[b".strtab" if n == b".symtab" else b".dynstr"]
            info, entsize = 1, 24
            flags = 2 if n == b".dynsym" else 0
        elif n in (b".strtab", b".dynstr", b".shstrtab"):
            typ = 3
        shdrs.append(struct.pack("<IIQQQQIIQQ", name_off[n], typ, flags, addr, off, size, link, info,
                                 8, entsize))
    e_type = 2 if kind == "exec" else 3
    ehdr = (b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8
            + struct.pack("<HHIQQQIHHHHHH", e_type, 62, 1, base, ehdr_size, shoff, 0, ehdr_size,
                          phdr_size, 1, 64, len(shdrs), index[b".shstrtab"]))
    total = shoff + 64 * len(shdrs)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0, base, base, total, total + 0x200, 0x1000)
    return ehdr + phdr + body + b"".join(shdrs)


def hostile_elf(sections, data=b"", head_size=0x1000):
    """An x86-64 ET_DYN whose first HEAD_SIZE bytes are: the ELF header, one
    PT_LOAD at offset 0, DATA, .shstrtab and the section headers of
    SECTIONS [(name, type, flags, offset, size, link, entsize)]; padded to
    HEAD_SIZE (or longer if it does not fit). Sections may claim bytes the
    file does not have: that is the point (docs/reliability.md, "A hostile
    target")."""
    names = sorted({n for n, *_ in sections} | {b".shstrtab"})
    shstr = b"\0" + b"".join(n + b"\0" for n in names)
    name_off = {}
    for n in names:
        name_off[n] = shstr.index(b"\0" + n + b"\0") + 1
    data_off = 64 + 56
    shstr_off = data_off + len(data)
    shoff = (shstr_off + len(shstr) + 7) & ~7
    shdrs = [b"\0" * 64]
    for name, typ, flags, offset, size, link, entsize in sections:
        shdrs.append(struct.pack("<IIQQQQIIQQ", name_off[name], typ, flags, offset, offset, size,
                                 link, 0, 8, entsize))
    shdrs.append(struct.pack("<IIQQQQIIQQ", name_off[b".shstrtab"], 3, 0, 0, shstr_off, len(shstr),
                             0, 0, 1, 0))
    total = max(head_size, shoff + 64 * len(shdrs))
    ehdr = (b"\x7fELF\x02\x01\x01\x00" + b"\0" * 8
            + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, shoff, 0, 64, 56, 1, 64, len(shdrs),
                          len(shdrs) - 1))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, 0x1000, 0x1000, 0x1000)
    body = ehdr + phdr + data + shstr
    body += b"\0" * (shoff - len(body)) + b"".join(shdrs)
    return body + b"\0" * (total - len(body))


def sparse_rodata_elf(rodata_size):
    """A 4 KiB head whose .rodata (at 4 KiB) is RODATA_SIZE bytes: made
    sparse to that size (truncate), a file of 4 KiB on disk whose
    interpreter version search read all of it."""
    return hostile_elf([(b".rodata", 1, 2, 0x1000, rodata_size, 0, 0)])


def many_symtabs_elf(tables=8000, symbols=54000):
    """TABLES symbol-table sections, all over one table of SYMBOLS entries
    (1.8 MB at the defaults): indexing each took 28 s."""
    strtab = b"\0" + b"".join(b"s%06d\0" % i for i in range(symbols))
    syms = b"\0" * 24 + b"".join(struct.pack("<IBBHQQ", 1 + 8 * i, 0x11, 0, 1, 0x100 + 8 * i, 8)
                                 for i in range(symbols))
    data = strtab + b"\0" * (-len(strtab) % 8) + syms
    strtab_off = 64 + 56
    syms_off = strtab_off + len(strtab) + (-len(strtab) % 8)
    sections = [(b".strtab", 3, 0, strtab_off, len(strtab), 0, 0)]
    sections += [(b".symtab", 2, 0, syms_off, len(syms), 1, 24)] * tables
    return hostile_elf(sections, data)


def patch(data, offset, blob):
    return data[:offset] + blob + data[offset + len(blob):]


def elf_corpus():
    write("elf", "exec", elf("exec"))
    write("elf", "dyn", elf("dyn"))
    write("elf", "stripped", elf("dyn", symtab=False))
    write("elf", "symtab_only", elf("exec", dynsym=False))
    write("elf", "truncated", elf("exec")[:200])
    write("elf", "elf32", b"\x7fELF\x01\x01\x01\x00" + b"\0" * 56)
    write("elf", "not_elf", b"#!/bin/sh\necho hi\n")
    write("elf", "empty", b"")
    # Hostile files (docs/reliability.md, "A hostile target"); the live
    # versions, sparse and full size, are test_hostile_target.py's.
    write("elf", "hostile_rodata_beyond_eof", sparse_rodata_elf(512 << 20))
    write("elf", "hostile_many_symtabs", many_symtabs_elf(2000, 20000))
    write("elf", "hostile_section_count",
          patch(hostile_elf([(b".rodata", 1, 2, 0x1000, 16, 0, 0)]), 60, struct.pack("<H", 65535)))


# ------------------------------------------------------------------ maps

MAPS = b"""\
00400000-00401000 r--p 00000000 08:01 1317 /usr/bin/python3.11
00401000-006b3000 r-xp 00001000 08:01 1317 /usr/bin/python3.11
008d1000-008d2000 r--p 004d1000 08:01 1317 /usr/bin/python3.11
008d2000-00a00000 rw-p 004d2000 08:01 1317 /usr/bin/python3.11
01c8e000-01d2f000 rw-p 00000000 00:00 0                                  [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0
7f1c2c5a0000-7f1c2c5c6000 r--p 00000000 08:01 2234 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2c80e000-7f1c2ca5f000 r-xp 0009d000 08:01 9999 /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0 (deleted)
7f1c2cb00000-7f1c2cb01000 r--p 00000000 08:01 4242 /tmp/dir with spaces/lib\xc3\xb1.so
7ffd1b5e4000-7ffd1b605000 rw-p 00000000 00:00 0                          [stack]
7ffd1b7c3000-7ffd1b7c7000 r--p 00000000 00:00 0                          [vvar]
7ffd1b7c7000-7ffd1b7c9000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""


def maps_corpus():
    write("maps", "python", MAPS)
    write("maps", "malformed", b"zzzz-1000 r--p 0 0 0 /x\n1000-0800 r--p 00000000 00:00 0 /backwards\n"
          b"1000-2000\n1000-2000 r 0 0\n-\n\n 1000-2000 rwxp 00000000 08:01 1 /lead\n"
          b"ffffffffffffffffff-1 r--p 0 0 0 /overflow\n1000-2000 r--p 00000000 08:01 99999999999999999999 /x")
    write("maps", "no_newline", b"7f00-7f01 r-xp 00000000 08:01 12 /lib/a.so (deleted)")


# ------------------------------------------------------------ line tables

def line_table_corpus(cases_path):
    with open(cases_path) as f:
        text = f.read()
    case = re.compile(r'\{"(?P<ver>[^"]+)", "(?P<name>[^"]+)", (?P<fmt>\w+), (?P<first>-?\d+), '
                      r'(?P<len>\d+),\s*\{(?P<bytes>[^}]*)\},\s*\{(?P<runs>.*?)\}\},', re.S)
    seen = set()
    count = 0
    for m in case.finditer(text):
        table = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", m.group("bytes")))
        key = (m.group("fmt"), table)
        if not table or key in seen:
            continue
        seen.add(key)
        fmt = FORMATS[m.group("fmt")]
        first = int(m.group("first"))
        code_len = int(m.group("len"))
        for offset in (code_len // 2, code_len - 2):
            name = "%s_%s_%d" % (m.group("ver"), re.sub(r"\W", "_", m.group("name")), offset)
            write("line_table", name, struct.pack("<Bii", fmt, first, offset) + table)
            count += 1
        if count >= 40:
            break
    # Hostile shapes: huge deltas, truncated entries, a negative offset.
    write("line_table", "lnotab_odd", struct.pack("<Bii", 1, 10, 4) + b"\x02\x01\x02")
    write("line_table", "location_truncated", struct.pack("<Bii", 3, 1, 6) + b"\xf8\x7f\xff\xff")
    write("line_table", "negative_offset", struct.pack("<Bii", 2, 7, -2) + b"\x06\x01")
    write("line_table", "int_max", struct.pack("<Bii", 0, 0x7ffffff0, 200) + b"\x00\x7f" * 40)


# --------------------------------------------------------------- strings

def strings_corpus():
    write("strings", "latin1", b"\x01" + "fún_ñ".encode("latin-1"))
    write("strings", "ucs2", b"\x02" + "関数".encode("utf-16-le") + b"\x00\xd8")  # lone surrogate
    write("strings", "ucs4", b"\x04" + "𝔣x".encode("utf-32-le") + struct.pack("<I", 0x110000))
    write("strings", "bad_kind", b"\x03abc")
    write("strings", "odd_length", b"\x02abc")
    write("strings", "empty", b"\x04")


# ---------------------------------------------------------------- writers

def s(b, limit):
    b = b[:limit]
    return bytes([len(b)]) + b


def profile_input(flags, frames, threads, samples):
    """Encodes a profile the way fuzz_writers.cc reads it."""
    out = bytes([flags]) + struct.pack("<i", 4242) + s(b"3.11.7", 16) + s(b"python3 app.py", 64)
    out += struct.pack("<H", 99)  # interval 1/100 s
    out += bytes([len(frames) - 1])
    for function, qualname, filename, line in frames:
        out += s(function, 48)
        if qualname is None:
            out += b"\0"
        else:
            out += b"\1" + s(qualname, 48)
        out += s(filename, 64) + struct.pack("<i", line)
    out += bytes([len(threads) - 1])
    for ident, tid, name in threads:
        out += struct.pack("<Q", ident)
        out += (b"\1" + struct.pack("<i", tid)) if tid is not None else b"\0"
        out += (b"\1" + s(name, 32)) if name is not None else b"\0"
    for thread, stack, count in samples:
        out += bytes([thread, len(stack)]) + bytes(stack) + bytes([count - 1])
    return out


def writers_corpus():
    frames = [(b"<module>", None, b"/srv/app.py", 40), (b"run", b"App.run", b"/srv/app.py", 12),
              (b"hot", None, b"/srv/lib/hot.py", 7), (b"fn;with\"quotes\"&<tags>", None,
                                                      "/srv/dir ñ/関.py".encode(), 3),
              (b"<unknown>", None, b"<unknown>", 0), (b"\xff\xfe\x01bad", None, b"]]>\x00</svg>", -1)]
    threads = [(0x7F0000001000, 100, b"python3"), (0x7F0000002000, None, b"worker <1>"),
               (0x7F0000003000, 102, None)]
    samples = [(0, [2, 1, 0], 8), (0, [3, 0], 2), (1, [2], 4), (1, [4, 1, 0], 1), (2, [5, 5, 5], 3),
               (0, [], 1)]
    write("writers", "basic", profile_input(0, frames, threads, samples[:4]))
    write("writers", "threads_timeline", profile_input(3, frames, threads, samples))
    write("writers", "hostile_names", profile_input(2, frames, threads, [(2, [5, 3, 5], 2)]))
    write("writers", "deep", profile_input(1, frames, threads, [(0, [i % 6 for i in range(63)], 1)]))
    write("writers", "empty", b"")


# ---------------------------------------------------------- sample stream
# fuzz_sample_stream.cc: a byte that picks a chunk size, then the stream.
# Encoded here from docs/how-it-works.md ("The sample stream"), not from
# core/output/sample_stream.cc: test_sample_stream.cc decodes these seeds,
# so the format has two writers that must agree.

def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def zigzag(v):
    return (v << 1) ^ (v >> 63)


class SampleStream:
    HELLO, STRING, FRAME, THREAD, TIME, SAMPLE, COUNTERS, END = range(1, 9)

    def __init__(self):
        self.out = b"PYFLSTRM" + varint(1)
        self.strings = {}
        self.frames = {}
        self.threads = {}
        self.elapsed = None

    def record(self, kind, payload):
        self.out += bytes([kind]) + varint(len(payload)) + payload

    def hello(self, pid, version):
        self.record(self.HELLO, varint(pid) + varint(len(version)) + version)

    def string(self, s):
        if s not in self.strings:
            self.strings[s] = len(self.strings)
            self.record(self.STRING, s)
        return self.strings[s]

    def frame(self, function, filename, line=None, qualname=None, library=b"", address=0,
              native=False, inlined=False):
        key = (function, filename, line, qualname, library, address, native, inlined)
        if key not in self.frames:
            ids = [self.string(function), self.string(qualname) if qualname is not None else None,
                   self.string(filename), self.string(library)]
            flags = ((qualname is not None) | (line is not None) << 1 | native << 2 | inlined << 3)
            payload = bytes([flags]) + varint(ids[0])
            if qualname is not None:
                payload += varint(ids[1])
            payload += varint(ids[2])
            if line is not None:
                payload += varint(zigzag(line))
            payload += varint(ids[3]) + varint(address)
            self.frames[key] = len(self.frames)
            self.record(self.FRAME, payload)
        return self.frames[key]

    def thread(self, ident, tid=None, name=None):
        key = (ident, tid, name)
        if key not in self.threads:
            name_id = self.string(name) if name is not None else None
            payload = bytes([(tid is not None) | (name is not None) << 1]) + varint(ident)
            if tid is not None:
                payload += varint(zigzag(tid))
            if name is not None:
                payload += varint(name_id)
            self.threads[key] = len(self.threads)
            self.record(self.THREAD, payload)
        return self.threads[key]

    def sample(self, elapsed, thread, frames, gil=None, idle=None, truncated=False):
        """THREAD: (ident, tid, name); FRAMES: frame() arguments as tuples or dicts."""
        t = self.thread(*thread)
        ids = [self.frame(**f) if isinstance(f, dict) else self.frame(*f) for f in frames]
        if elapsed != self.elapsed:
            self.record(self.TIME, struct.pack("<d", elapsed))
            self.elapsed = elapsed
        flags = ((gil is not None) | bool(gil) << 1 | (idle is not None) << 2 | bool(idle) << 3
                 | truncated << 4)
        self.record(self.SAMPLE, varint(t) + bytes([flags]) + varint(len(ids))
                    + b"".join(varint(i) for i in ids))

    def finish(self, counters, ending):
        self.record(self.COUNTERS, b"".join(varint(c) for c in counters) + bytes([ending]))
        self.record(self.END, b"")


def sample_stream_corpus():
    main = (0x7F0000001000, 100, b"python3")
    worker = (0x7F0000002000, None, "worker ñ".encode())
    module = (b"<module>", b"/srv/app.py", 40)
    run = (b"run", b"/srv/app.py", 12, b"App.run")
    hot = (b"hot", "/srv/dir ñ/関.py".encode(), 7)

    s = SampleStream()
    s.hello(4242, b"3.11.7")
    for tick in range(3):
        s.sample(0.01 * tick, main, [hot, run, module], gil=True, idle=False)
        s.sample(0.01 * tick, worker, [run, module], gil=False, idle=True)
    s.sample(0.04, (3, -1, b""), [(b"", b"", None)], truncated=True)
    s.finish([5, 1, 0, 7, 2, 3], 1)
    write("sample_stream", "whole_python", b"\x00" + s.out)
    write("sample_stream", "cut_short", b"\x07" + s.out[:-20])

    s = SampleStream()
    s.hello(7, b"3.14.0")
    spin = dict(function=b"int ns::spin<int>(int)", filename=b"spin.cc", line=9,
                library=b"/srv/lib/native_cpp.so", address=0x7F1234567890, native=True)
    helper = dict(function=b"helper", filename=b"", library=b"/srv/lib/native_cpp.so",
                  address=0x7F1234567890, native=True, inlined=True)
    marker = dict(function=b"[native stack not unwound further]", filename=b"", native=True)
    for tick in range(2):
        s.sample(1.5 + tick, main, [spin, helper, hot, module, marker])
    s.finish([2, 0, 1, 2, 0, 0], 2)
    write("sample_stream", "whole_native", b"\x01" + s.out)

    s = SampleStream()
    s.hello(1, b"2.7.18")
    deep = [(b"f%d" % i, b"/srv/deep.py", i) for i in range(200)]
    s.sample(0.0, main, deep)
    s.sample(0.0, main, deep)
    s.sample(0.1, main, deep[:150])
    write("sample_stream", "deep", b"\x03" + s.out)

    good = s.out
    write("sample_stream", "header_only", b"\x00" + good[:9])
    write("sample_stream", "bad_magic", b"\x00" + b"PYFLSTRX" + good[8:])
    write("sample_stream", "bad_frame_id", b"\x05" + good + bytes([6, 5, 0, 0, 1, 0xAC, 0x02]))
    write("sample_stream", "bad_after_end", b"\x00" + good + bytes([7, 7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 8, 0]))

# ----------------------------------------------------------------- walker
# fuzz_walker.cc: shape (threads, depth, functions), then patches.

def w_raw(offset, data):
    return b"\x00" + struct.pack("<IB", offset, len(data)) + data


def w_value(field, value):
    return b"\x01" + struct.pack("<HQ", field, value)


def w_pointer(field, obj, delta=0):
    return b"\x02" + struct.pack("<HHb", field, obj, delta)


def w_special(field, which):
    return b"\x03" + struct.pack("<HB", field, which)


SAMPLE = b"\x04"


def walker_corpus():
    write("walker", "well_formed", bytes([1, 9, 3]) + SAMPLE + SAMPLE)
    write("walker", "three_threads", bytes([2, 23, 7]) + SAMPLE)
    # Field and object indexes wrap, so these hit different fields per version.
    write("walker", "self_pointers", bytes([0, 5, 2]) + b"".join(w_special(f, 4) for f in range(0, 60, 7)))
    write("walker", "unmapped", bytes([1, 6, 2]) + b"".join(w_special(f, 3) for f in range(3, 80, 5)))
    write("walker", "huge", bytes([0, 4, 4]) + b"".join(w_special(f, 2) for f in range(1, 90, 3)))
    write("walker", "cross_links", bytes([1, 12, 5]) + SAMPLE
          + b"".join(w_pointer(f, (f * 7) % 40, (f % 5) - 2) for f in range(0, 120, 4)) + SAMPLE)
    write("walker", "torn_bytes", bytes([2, 8, 3]) + SAMPLE
          + b"".join(w_raw(o, b"\xff" * 9) for o in range(0, 4000, 97)) + SAMPLE)
    write("walker", "values", bytes([0, 3, 1]) + b"".join(w_value(f, 0x100000 + 8 * f) for f in range(40)))
    write("walker", "empty", b"")
    # regress_*: inputs libFuzzer found (an empty str's data copied through a
    # null pointer; a 2.7 byte-string name), kept as they were found.

# ------------------------------------------------------------------ core

PRSTATUS_SIZE = 336  # sizeof(struct elf_prstatus), x86-64
PRSTATUS_PID_AT = 32


def note(name, kind, desc):
    name = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), kind) + pad(name) + pad(desc)


def core_file(segments, notes, truncate=None):
    """An x86-64 ET_CORE: SEGMENTS as (vaddr, bytes, memsz, flags), then NOTES."""
    phnum = 1 + len(segments)
    offset = 64 + 56 * phnum
    note_blob = b"".join(notes)
    phdrs = [struct.pack("<IIQQQQQQ", 4, 4, offset, 0, 0, len(note_blob), 0, 1)]
    offset += len(note_blob)
    data = b""
    for vaddr, content, memsz, flags in segments:
        phdrs.append(struct.pack("<IIQQQQQQ", 1, flags, offset + len(data), vaddr, 0, len(content),
                                 memsz, 1))
        data += content
    ehdr = (b"\x7fELF\x02\x01\x01" + b"\0" * 9 +
            struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0))
    out = ehdr + b"".join(phdrs) + note_blob + data
    return out[:truncate] if truncate else out


def core_corpus():
    prstatus = bytearray(PRSTATUS_SIZE)
    struct.pack_into("<i", prstatus, PRSTATUS_PID_AT, 4242)
    names = b"/nonexistent/libpython3.11.so.1.0\0/nonexistent/data\0"
    files = struct.pack("<QQ", 2, 4096) + struct.pack("<QQQQQQ", 0x7f0000000000, 0x7f0000003000, 0,
                                                      0x7f0000010000, 0x7f0000011000, 2) + names
    auxv = struct.pack("<QQQQ", 3, 0x7f0000000040, 0, 0)
    notes = [note(b"CORE", 1, bytes(prstatus)), note(b"CORE", 0x46494c45, files), note(b"CORE", 6, auxv)]
    segments = [(0x7f0000000000, b"\x7fELF" + b"\0" * 4092, 0x1000, 4),
                (0x7f0000002000, b"", 0x1000, 4),
                (0x00007ffc00000000, bytes(range(256)) * 16, 0x2000, 6)]
    whole = core_file(segments, notes)
    write("core", "whole", whole)
    write("core", "truncated", core_file(segments, notes, truncate=len(whole) - 100))
    write("core", "no_threads", core_file(segments, notes[1:]))
    write("core", "overlapping", core_file(segments + [(0x7f0000000800, b"x", 0x1000, 4)], notes))
    write("core", "exec_not_core", whole[:16] + struct.pack("<H", 2) + whole[18:])
    write("core", "bad_file_note", core_file(segments, [notes[0], note(b"CORE", 0x46494c45,
                                                                       struct.pack("<QQ", 1 << 40, 4096))]))
    write("core", "empty", b"")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--line-table-cases",
                        default=os.path.join(HERE, "..", "unit", "line_table_cases.inc"))
    args = parser.parse_args()
    elf_corpus()
    maps_corpus()
    line_table_corpus(args.line_table_cases)
    strings_corpus()
    writers_corpus()
    sample_stream_corpus()
    walker_corpus()
    core_corpus()


if __name__ == "__main__":
    main()
