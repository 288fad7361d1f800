"""Fork server for the kill test: loads the engine once, then forks workers that generate until SIGKILLed.

Commands on stdin, one per line; answers on stdout:
  fork <seed> <crash>  -> child pid; the child runs jobs in a loop; <crash> is "none" or a point where it
                          kills itself (see CRASH_POINTS) to hit the narrow windows deterministically
  kill <pid>           -> "dead" once SIGKILL has been sent and the child reaped
  wait <pid>           -> the child's exit status once it ended by itself
The parent never runs a model: forking after computations can hang OpenMP in the child.
"""

from __future__ import annotations

import os
import signal
import sys


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_crash(point: str) -> None:
    """Monkeypatch the write path so the process dies at `point` (an exact moment random kills rarely hit)."""
    from sdxl_nb.jobs import files
    from sdxl_nb.record import joblog, recovery, store

    if point == "after-first-image":
        real = files.write_new_file
        files.write_new_file = lambda *a, **k: (real(*a, **k), die())[0]
    elif point == "before-link":
        store.os = _Proxy(store.os, link=lambda *a: die())
    elif point == "mid-append":
        real_write = os.write

        def torn_write(fd, data):
            real_write(fd, data[: len(data) // 2])
            die()

        joblog.os = _Proxy(joblog.os, write=torn_write)
    elif point == "after-append":
        recovery.JobMarker.close = lambda self, remove: die()
    elif point != "none":
        raise SystemExit(f"unknown crash point {point}")


class _Proxy:
    """A module stand-in whose named functions are replaced (the rest passes through)."""

    def __init__(self, module, **replaced):
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._module, name)


def child(engine, out_dir: str, seed: int, crash: str) -> None:
    import torch

    from sdxl_nb.jobs.generate import generate

    torch.set_num_threads(1)
    install_crash(crash)
    for job in range(1000):
        generate(prompt=f"kill test {seed}", width=64, height=64, steps=2, batch=3, chunk_size=1,
                 seed=seed * 1000 + job, out_dir=out_dir, engine=engine)


def main() -> None:
    out_dir = sys.argv[1]
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    engine = Engine(device="cpu")
    engine.load(find_model("tiny-sdxl", load_presets()))
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "fork":
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    child(engine, out_dir, int(args[0]), args[1])
                except BaseException:
                    import traceback

                    traceback.print_exc()
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
