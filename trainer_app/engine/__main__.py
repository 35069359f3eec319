"""``python -m trainer_app.engine SPEC.json``, normally under torchrun: the process exits with one of the
codes in exit_codes. Kept thin: the parent-death signal, the stop request and the heartbeat are set before
the slow imports, so neither a SIGKILL of torchrun nor an early SIGTERM is missed, and a supervisor sees
the rank alive while torch loads."""
import time

STARTED = time.time()

import sys  # noqa: E402

from trainer_app.engine.distributed import StopRequest, set_parent_death_signal  # noqa: E402
from trainer_app.engine.liveness import start_heartbeat  # noqa: E402


def main(argv: list[str]) -> int:
    set_parent_death_signal()
    stop = StopRequest().install()
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: torchrun [--nproc-per-node N] -m trainer_app.engine SPEC.json\n"
              "       python -m trainer_app.engine SPEC.json   (one process, no torchrun)", file=sys.stderr)
        return 2
    liveness = start_heartbeat(argv[1])
    try:
        try:
            import psutil

            process_start = psutil.Process().create_time()
        except Exception:
            process_start = STARTED
        from trainer_app.engine.runner import run  # imports torch: seconds

        return run(argv[1], stop=stop, marks={"process_start": process_start, "imports_done": time.time()},
                   liveness=liveness)
    finally:
        liveness.done()


def _exit_now(code: int) -> None:
    """Leave without the interpreter's finalisation: the result file is written, the event sinks are closed
    and the process group is destroyed by now, and finalising can still abort a rank in Gloo's C++ threads
    ("terminate called without an active exception", SIGABRT) after a successful run."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main(sys.argv))
