"""The engine's heartbeat and the supervisor's watch: a rank's file advances while it makes progress (or
sits in a bounded phase without steps), and the watch calls the engine hung when no rank advanced for the
timeout, naming the rank and its phase; a stopped process is caught for real."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainer_app.engine.liveness import HeartbeatFile, Liveness, heartbeat_path, start_heartbeat
from trainer_app.progress_watch import ProgressWatch

REPO = Path(__file__).resolve().parents[3]


def seq(directory, rank=0):
    return json.loads(heartbeat_path(directory, rank).read_text())["seq"]


def test_a_waiting_rank_beats_on_its_own_and_a_training_rank_only_when_it_makes_progress(tmp_path):
    heartbeat = HeartbeatFile(tmp_path, rank=0, every_s=0.05)
    try:
        first = seq(tmp_path)
        time.sleep(0.3)
        assert seq(tmp_path) > first  # starting: the slow imports make no steps, but the process is alive
        heartbeat.progress("training")
        time.sleep(0.2)
        settled = seq(tmp_path)
        time.sleep(0.3)
        assert seq(tmp_path) == settled  # no step for a while: no beat
        heartbeat.beat()
        time.sleep(0.2)
        assert seq(tmp_path) > settled
        with heartbeat.waiting("checkpointing"):
            inside = seq(tmp_path)
            time.sleep(0.3)
            assert seq(tmp_path) > inside
            assert json.loads(heartbeat_path(tmp_path, 0).read_text())["phase"] == "checkpointing"
        time.sleep(0.2)
        assert json.loads(heartbeat_path(tmp_path, 0).read_text())["phase"] == "training"
    finally:
        heartbeat.done()
    assert json.loads(heartbeat_path(tmp_path, 0).read_text())["phase"] == "done"


def test_a_spec_without_a_heartbeat_directory_gets_the_no_op(tmp_path):
    assert type(start_heartbeat({"control": {}})) is Liveness
    assert type(start_heartbeat(str(tmp_path / "missing.json"))) is Liveness
    heartbeat = start_heartbeat({"control": {"heartbeat_dir": str(tmp_path / "beats"), "heartbeat_every_s": 1}},
                                rank=3)
    heartbeat.done()
    assert heartbeat_path(tmp_path / "beats", 3).exists()


def write(directory, rank, seq, phase="training"):
    directory.mkdir(parents=True, exist_ok=True)
    heartbeat_path(directory, rank).write_text(json.dumps({"rank": rank, "seq": seq, "phase": phase}))


def test_the_watch_counts_from_each_ranks_last_change_and_names_the_stuck_one(tmp_path):
    watch = ProgressWatch(tmp_path, ranks=2, timeout_s=10, startup_s=30)
    watch.reset()
    watch.start(now=0)
    assert watch.hung(now=11) is None  # torchrun's agent is still importing torch: no rank yet
    write(tmp_path, 0, 1)
    write(tmp_path, 1, 1)
    assert watch.hung(now=12) is None  # seen changing now
    write(tmp_path, 0, 2)
    assert watch.hung(now=20) is None
    assert watch.hung(now=23) == "no progress for 10 s: the engine hung (rank 1 training)"
    write(tmp_path, 1, 2, phase="done")  # finished first: the others may take longer to end
    assert watch.hung(now=29) is None
    assert "rank 0 training" in watch.hung(now=31)


def test_no_rank_started_counts_as_hung_after_the_startup_allowance(tmp_path):
    watch = ProgressWatch(tmp_path, ranks=2, timeout_s=10, startup_s=30)
    watch.start(now=0)
    assert watch.hung(now=29) is None  # torchrun's agent may still be importing torch
    assert watch.hung(now=31) == "no progress for 30 s: the engine hung (2 rank(s) never started; 0 did)"


def test_a_rank_that_never_starts_while_its_peer_did_counts_as_hung_after_the_timeout(tmp_path):
    watch = ProgressWatch(tmp_path, ranks=2, timeout_s=10, startup_s=30)
    watch.start(now=0)
    assert watch.hung(now=5) is None
    write(tmp_path, 0, 1)  # the agent started its ranks together: rank 1 should have written by now too
    assert watch.hung(now=6) is None
    write(tmp_path, 0, 2)
    assert watch.hung(now=15) is None
    assert watch.hung(now=17) == "no progress for 10 s: the engine hung (1 rank(s) never started; 1 did)"


def test_an_earlier_attempts_files_do_not_count(tmp_path):
    write(tmp_path, 0, 7)
    watch = ProgressWatch(tmp_path, ranks=1, timeout_s=5)
    watch.reset()
    assert not list(tmp_path.glob("rank-*.json"))


BEATING = """
import sys, time
from trainer_app.engine.liveness import HeartbeatFile
heartbeat = HeartbeatFile(sys.argv[1], rank=0, every_s=0.05)
heartbeat.progress("training")
print("ready", flush=True)
while True:
    time.sleep(0.01)
    heartbeat.beat()
"""


def test_a_stopped_process_is_caught(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", BEATING, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout.readline().strip() == b"ready"
        watch = ProgressWatch(tmp_path, ranks=1, timeout_s=0.5)
        watch.start()
        for _ in range(10):
            assert watch.hung() is None
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while (reason := watch.hung()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reason == "no progress for 0.5 s: the engine hung (rank 0 training)"
    finally:
        process.kill()
        process.wait()


class Recorder(Liveness):
    """Keeps what the engine tells its heartbeat."""

    def __init__(self):
        self.beats, self.phases = 0, []

    def beat(self):
        self.beats += 1

    def progress(self, phase):
        self.phases.append(("progress", phase))

    def wait(self, phase):
        self.phases.append(("wait", phase))

    def waiting(self, phase):
        self.phases.append(("waiting", phase))
        return super().waiting(phase)


def test_the_engine_beats_at_every_step_and_evaluation_batch_and_waits_in_its_phases_without_steps(tmp_path):
    from trainer_app.engine import exit_codes
    from trainer_app.engine.distributed import StopRequest
    from trainer_app.engine.runner import run
    from trainer_app.engine.testing import make_sklearn_dataset, make_spec

    make_sklearn_dataset("wine", tmp_path / "wine", fractions=(0.5, 0.2, 0.3))
    spec = make_spec(data=tmp_path / "wine", model={"preset": "mlp"}, checkpoint_dir=tmp_path / "checkpoints",
                     training={"batch_size": 16, "epochs": 2})
    recorder = Recorder()
    assert run(spec, stop=StopRequest(), liveness=recorder) == exit_codes.SUCCEEDED
    steps = json.loads((tmp_path / "checkpoints" / "result.json").read_text())["step"]
    assert recorder.beats > steps + 2  # the steps, then at least one evaluation batch per validation and the test
    assert recorder.phases == [("progress", "training"),
                               ("waiting", "checkpointing"), ("waiting", "sending events"),
                               ("waiting", "checkpointing"), ("waiting", "sending events"),
                               ("wait", "finishing")]
