"""Training settings that fit the data: batch size, learning rate and epochs proposed from the dataset's size
and shape and the chosen model, each with the reason, for people who do not know what to pick.

Rules of thumb, written down so that they can be argued with:
- batch size: 32 below 2,000 training samples (small data wants more, noisier steps), 64 below 20,000,
  128 below 200,000, else 256; never more than a tenth of the training split; a multiple of the processes.
- learning rate: the optimizer's usual starting point for the architecture (Adam/AdamW 1e-3, 3e-4 for
  transformers; SGD with momentum 0.05 for small networks, 0.1 × batch/256 for ResNets: the linear scaling
  rule; Adagrad 0.01; RMSprop 1e-3). The learning-rate finder measures it instead of guessing.
- epochs: about 3,000 optimizer steps, between 5 and 100 epochs (transformers 1.5× more: they warm up
  slowly); more steps on small data, where each epoch is short.
"""
from __future__ import annotations

import math

TRANSFORMERS = ("vit_tiny", "tab_transformer")
RESNETS = ("resnet18", "resnet34", "resnet50")
TARGET_STEPS = 3_000


def training_defaults(*, train_samples: int, input_shape: list, task: str, num_classes: int | None,
                      preset: str | None, family: str = "", optimizer: str = "adam", processes: int = 1) -> dict:
    """{"batch_size", "lr", "epochs", "optimizer", "reasons": {field: why}}."""
    train_samples = max(int(train_samples or 0), 1)
    processes = max(int(processes or 1), 1)
    reasons = {}
    if train_samples < 2_000:
        batch, why = 32, f"{train_samples:,} training samples is small data: smaller batches give more, noisier steps"
    elif train_samples < 20_000:
        batch, why = 64, f"{train_samples:,} training samples: a mid-size batch"
    elif train_samples < 200_000:
        batch, why = 128, f"{train_samples:,} training samples: larger batches use the hardware better"
    else:
        batch, why = 256, f"{train_samples:,} training samples: large data, large batches"
    cap = max(processes, 2 ** int(math.log2(max(train_samples // 10, 1))))
    if batch > cap:
        batch, why = cap, f"at most a tenth of the {train_samples:,} training samples"
    batch = max(processes, batch - batch % processes)
    reasons["batch_size"] = why + (f"; divisible by the {processes} processes" if processes > 1 else "")

    transformer = preset in TRANSFORMERS or family == "Transformer"
    resnet = preset in RESNETS or family == "ResNet"
    if optimizer in ("adam", "adamw"):
        lr = 3e-4 if transformer else 1e-3
        reasons["lr"] = ("Adam's usual start for transformers, which are sensitive to large steps" if transformer
                         else f"{optimizer.capitalize() if optimizer == 'adam' else 'AdamW'}'s usual starting "
                              "point; the learning-rate finder can measure a better one")
    elif optimizer == "sgd":
        lr = round(0.1 * batch / 256, 6) if resnet else 0.05
        reasons["lr"] = (f"SGD for ResNets: 0.1 per 256 samples in a batch (the linear scaling rule) → {lr:g}"
                         if resnet else "SGD with momentum 0.9 on a small network")
    elif optimizer == "adagrad":
        lr, reasons["lr"] = 0.01, "Adagrad shrinks its steps on its own: it starts higher than Adam"
    else:
        lr, reasons["lr"] = 1e-3, "RMSprop's usual starting point"
    steps_per_epoch = max(1, math.ceil(train_samples / batch))
    epochs = min(100, max(5, round(TARGET_STEPS / steps_per_epoch)))
    if transformer:
        epochs = min(150, round(epochs * 1.5))
    reasons["epochs"] = (f"about {TARGET_STEPS:,} optimizer steps: {steps_per_epoch:,} steps an epoch at batch "
                         f"{batch} → {epochs} epochs" + (" (×1.5: transformers warm up slowly)" if transformer else "")
                         + "; early stopping can end it sooner")
    return {"batch_size": batch, "lr": lr, "epochs": epochs, "optimizer": optimizer, "reasons": reasons,
            "steps_per_epoch": steps_per_epoch, "train_samples": train_samples}


def dataset_training_defaults(*, dataset, design=None, preset: str | None = None, optimizer: str = "adam",
                              processes: int = 1) -> dict:
    """training_defaults for a Dataset row and a design (or a preset's name)."""
    spec = design.spec if design is not None else ({"preset": preset} if preset else {})
    train = int((dataset.splits or {}).get("train") or dataset.num_samples or 0)
    return training_defaults(train_samples=train, input_shape=dataset.input_shape, task=dataset.task,
                             num_classes=dataset.num_classes, preset=spec.get("preset"),
                             family=design.family if design is not None else "", optimizer=optimizer,
                             processes=processes)
