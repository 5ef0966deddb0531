"""train.report_to: metrics go to TensorBoard (its own event files, read back with TensorBoard's reader) and/or
Weights & Biases besides metrics.jsonl; an unknown tracker or a missing library is an error naming the fix."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
from test_trainer import TINY, write_dataset

from thinktoggle.training.trainer import Reporters, TrainConfig, run_train


def test_tensorboard_gets_the_losses_of_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")  # the dev extra installs it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_dataset(tmp_path / "data", n=8)
    config = replace(TINY, max_steps=3, save_every=0, log_every=1, report_to=("tensorboard",))
    run_train(config, [data], tmp_path / "run")
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3] == [m["step"] for m in logged]
    assert [e.value for e in losses] == pytest.approx([m["loss"] for m in logged], rel=1e-6)  # stored as float32
    assert {"train/lr", "train/grad_norm", "train/tokens_per_s"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize(("name", "package"), [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_a_missing_library_names_the_setting_and_the_package(tmp_path, monkeypatch, name, package):
    # None in sys.modules makes the import fail as if the package were not installed
    for module in ("wandb", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        ImportError, match=f"train.report_to: {name} needs the {package} package: pip install {package}"
    ):
        Reporters(TrainConfig(report_to=(name,)), tmp_path, step=0)


def test_an_unknown_tracker_is_refused_by_name():
    with pytest.raises(ValueError, match="train.report_to: expected tensorboard and/or wandb, got 'mlflow'"):
        TrainConfig(report_to=("tensorboard", "mlflow"))
