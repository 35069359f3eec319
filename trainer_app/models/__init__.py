from trainer_app.models.datasets import Dataset, DatasetSource, DatasetStatus, SiteSettings, Upload
from trainer_app.models.designs import ModelDesign, WeightsFile
from trainer_app.models.fleet import Worker, WorkerGpuMinute, WorkerStatus
from trainer_app.models.nodes import NODE_ENDED_STATES, RunNode, RunNodeState
from trainer_app.models.projects import Membership, Project, Role
from trainer_app.models.sweeps import SWEEP_ACTIVE, SWEEP_FINAL, Sweep, SweepStatus
from trainer_app.models.runs import (ACTIVE_STATUSES, FINAL_STATUSES, Checkpoint, LeaderboardBaseline, MetricPoint,
                                     MetricRollup,
                                     Queue, Run, RunFinding, RunKind, RunLog, RunMetric, RunStatus, RunTag)

__all__ = ["ACTIVE_STATUSES", "Checkpoint", "Dataset", "DatasetSource", "DatasetStatus", "FINAL_STATUSES", "LeaderboardBaseline", "RunLog", "RunMetric", "RunTag",
           "Membership", "NODE_ENDED_STATES", "RunNode", "RunNodeState", "SWEEP_ACTIVE", "SWEEP_FINAL", "Sweep", "SweepStatus", "MetricPoint", "MetricRollup", "ModelDesign", "Project", "Queue", "Role", "Run", "RunFinding", "RunKind", "RunStatus",
           "SiteSettings", "Upload", "WeightsFile", "Worker", "WorkerGpuMinute", "WorkerStatus"]
