# SPDX-License-Identifier: Apache-2.0
"""A small program to profile: a busy worker thread and a waiting main thread.

Run by scripts/demo.sh, which passes a FIFO path to signal readiness.
"""
import sys
import threading


def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


class Worker(object):
    def crunch(self):
        while True:
            fibonacci(18)


def wait_for_work(event):
    event.wait()


def main():
    threading.Thread(target=Worker().crunch, name="worker", daemon=True).start()
    event = threading.Event()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as ready:
            ready.write("ready\n")
    wait_for_work(event)


if __name__ == "__main__":
    main()
