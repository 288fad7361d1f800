"""Fork server for the animate kill test: loads the kernel engine once, then forks workers running `sdxl-nb animate`.

Commands on stdin, one per line; answers on stdout:
  fork <seed> <jobs> <crash>  -> child pid; the child runs <jobs> animate commands (0: until killed), cycling
                                 seed-walk, slerp and prompt travel; <crash> is "none", one of tests/kill_worker.py's
                                 points, "write-N" (die once the N-th file of a job is published and journalled) or
                                 "link-N" (die right after the N-th file's link, before the journal notes it)
  kill <pid>                  -> "dead" once SIGKILL has been sent and the child reaped
  wait <pid>                  -> the child's exit status once it ended by itself
The parent never runs a model: forking after computations can hang OpenMP in the child.
"""

from __future__ import annotations

import os
import signal
import sys
from itertools import count

from tests.kill_worker import _Proxy, die
from tests.kill_worker import install_crash as install_write_crash

FRAMES = 4  # each job publishes frames 1-4, then the grid (5), the GIF (6) and the WebP (7)
MODES = [["--mode", "seed-walk"], ["--mode", "slerp", "--seed-end", "99"],
         ["--mode", "prompt-travel", "--prompt-end", "a storm"]]


def install_crash(point: str) -> None:
    from sdxl_nb.jobs import files
    from sdxl_nb.record import store

    kind, _, number = point.partition("-")
    if kind == "write" and number.isdigit():  # counted per job: file N of every job
        real, published = files.write_new_file, [0]

        def write_then_die(*args, **kwargs):
            path = real(*args, **kwargs)
            published[0] += 1
            if published[0] == int(number):
                die()
            return path

        files.write_new_file = write_then_die
    elif kind == "link" and number.isdigit():
        real_link, linked = os.link, [0]

        def link_then_die(source, target):
            real_link(source, target)
            linked[0] += 1
            if linked[0] == int(number):
                die()

        store.os = _Proxy(store.os, link=link_then_die)
    else:
        install_write_crash(point)


def child(out_dir: str, seed: int, jobs: int, crash: str) -> None:
    import torch

    from sdxl_nb.cli import main

    torch.set_num_threads(1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # the CLI prints paths; stdout is the server's answer channel
    os.dup2(quiet, 2)
    install_crash(crash)
    for job in count() if jobs == 0 else range(jobs):
        code = main(["animate", "--prompt", f"kill test {seed}", *MODES[job % len(MODES)], "--frames", str(FRAMES),
                     "--batch-size", "1", "--seed", str(seed * 1000 + job), "--width", "64", "--height", "64",
                     "--steps", "2", "--fps", "4", "--out", out_dir])
        if code != 0:
            raise SystemExit(f"sdxl-nb animate exited {code}")


def main() -> None:
    out_dir = sys.argv[1]
    from sdxl_nb.backends.local import get_engine
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    get_engine().load(find_model("tiny-sdxl", load_presets()))  # the CLI in each child finds it loaded
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "fork":
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    child(out_dir, int(args[0]), int(args[1]), args[2])
                except BaseException:  # said beside the output folder (stderr is closed in the child)
                    import traceback
                    from pathlib import Path

                    with open(Path(out_dir).parent / "worker_errors.log", "a", encoding="utf-8") as log:
                        log.write(traceback.format_exc())
                    code = 3
                os._exit(code)
            print(pid, flush=True)
        elif command == "kill":
            pid = int(args[0])
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("dead", flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(status, flush=True)


if __name__ == "__main__":
    main()
