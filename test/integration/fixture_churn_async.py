# SPDX-License-Identifier: Apache-2.0
"""An `async def` coroutine driven by hand, for fixture_churn.py (3.5+ only:
2.7 cannot parse this file, and the fixture skips it there).

adrive() sends into acoro() until it returns; acoro awaits suspend(), a
types.coroutine generator, so a send resumes acoro, which resumes suspend.
Every call between these functions sits on one line; a resumption through C
is marked `# resumes NAME` (see test_churn.py).
"""
import types


@types.coroutine
def suspend():
    x = yield
    return x


def aleaf(x):
    return x * 3 + 1


async def acoro(n):
    total = 0
    for _ in range(n):
        x = await suspend()
        total += aleaf(x)
    return total


def adrive(n):
    c = acoro(n)
    c.send(None)  # resumes acoro
    try:
        while True:
            c.send(1)  # resumes acoro
    except StopIteration as e:
        return e.value
