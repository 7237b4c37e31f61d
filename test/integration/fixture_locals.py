# SPDX-License-Identifier: Apache-2.0
"""Target of test_locals.py: stops, with known variables, in a known place.

    fixture_locals.py --ready-fd FD

Calls outer -> closure -> middle -> inner, whose frames hold arguments and
locals of every kind and of every type `dump --locals` shows, writes one
JSON line to FD (the ids of the objects shown by address) and blocks
reading stdin inside inner.  Runs under 2.7 as under 3.x: 2.7 has no
keyword-only arguments (middle's `key` is an ordinary one there) and no
bytes apart from str (its `text` is a byte string, `data` is left out);
the 3.x-only parts are compiled from a string.  Keep the values in step
with EXPECTED in test_locals.py.
"""

import json
import os
import sys

PY2 = sys.version_info[0] == 2


class Thing(object):
    pass


def signal_ready(fd, ids):
    os.write(fd, (json.dumps(ids) + "\n").encode("ascii"))
    os.close(fd)


def inner(m):
    signal_ready(READY_FD, IDS)
    sys.stdin.readline()


if PY2:
    def middle(c, x, key=None):
        m = 0.1
        return inner(m)
else:
    exec("def middle(c, x, *, key):\n"
         "    m = 0.1\n"
         "    return inner(m)\n")


def outer(a, b, *args, **kwargs):
    none = None
    yes = True
    no = False
    small = -7
    huge = -(10 ** 50) - 12345
    fl = 2.5
    tiny = 1e-05
    if PY2:
        text = 'it\'s "q"\t\xc3\xa9\n'
    else:
        text = u'it\'s "q"\t\u00e9\u65e5\n'
        data = b'\x00ab\xff"'
    long_text = "x" * 100
    lst = [1, 2, 3]
    tup = (1, 2)
    dct = {"a": 1, "b": 2, "c": 3, "d": 4}
    st = set([1, 2, 3, 4, 5])
    fs = frozenset([1])
    obj = Thing()
    captured = [10, 20]

    def closure(x):
        local_in_closure = x + 1
        return middle(captured, x, key=local_in_closure)

    IDS["obj"] = id(obj)
    IDS["closure"] = id(closure)
    return closure(5)


READY_FD = int(sys.argv[sys.argv.index("--ready-fd") + 1])
IDS = {}

if __name__ == "__main__":
    outer(1, "bee", 3, 4, extra=5)
