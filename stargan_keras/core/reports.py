"""What every family's evaluation writes: one report vocabulary, JSON files in the evaluation directory, and
TensorBoard scalars beside a run's training logs."""

from __future__ import annotations

import json
from pathlib import Path

from stargan_keras.core.config import ConfigError

METRICS = ("fid", "lpips", "accuracy")
EVAL_DIR = "eval"
# Every family's report has these keys, and its settings `SHARED_SETTINGS`, whatever else it adds.
REPORT_KEYS = ("checkpoint", "step", "model_family", "dataset", "metrics", "classifiers", "settings")
SHARED_SETTINGS = ("seed", "max_images_per_domain", "inception", "untrained_metric_networks")


class EvaluationError(ConfigError):
    """Evaluation settings or data that cannot work together; the message names the flag or folder."""


def make_report(*, checkpoint, step: int | None, family: str, dataset: str, results: dict, classifiers: dict,
                settings: dict, **extra) -> dict:
    """One evaluation's report: where the model came from, the family's `results` (its `metrics` and counts),
    the accuracy of each classifier that scored the translations on held-out real images ({name: {"accuracy":
    value, ...}}), and the settings (`max_images_per_domain`, `seed`, `inception`, ...)."""
    return {"checkpoint": str(checkpoint), "step": step, "model_family": family, "dataset": dataset, **extra,
            **results, "classifiers": classifiers, "settings": settings}


def checkpoint_step(path: str | Path) -> int | None:
    """The training step of a run directory's latest checkpoint; None for a model directory."""
    from stargan_keras.core.model_dir import is_model_directory
    from stargan_keras.core.run_dir import RunDir

    return None if is_model_directory(path) else RunDir(path).step()


def results_path(out_dir: str | Path, mode: str, step: int | None) -> Path:
    return Path(out_dir) / (f"metrics_{mode}_{step}.json" if step is not None else f"metrics_{mode}.json")


def write_results(out_dir: str | Path, mode: str, step: int | None, report: dict) -> Path:
    """The report of one mode as JSON in `out_dir`, named by mode and (for a run) step."""
    path = results_path(out_dir, mode, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path


def write_tensorboard(log_dir: str | Path, metrics: dict, step: int) -> None:
    """The values as scalars under their keys (`FID_latent/cat2dog`), beside the training logs."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        for key, value in metrics.items():
            tf.summary.scalar(key, value)
    writer.close()


def print_summary(title: str, results: dict, path: Path) -> None:
    """The metrics on the console: mean ± std over the seeds when there were several."""
    seeds = results.get("seeds", [])
    spread = f", mean ± std over {len(seeds)} seed(s) {', '.join(map(str, seeds))}" if seeds else ""
    print(f"\n{title}{spread} ({path}):")
    for key, value in results["metrics"].items():
        std = results.get("metrics_std", {}).get(key)
        print(f"  {key:<40} {value:.4f}" + (f" ± {std:.4f}" if std is not None else ""))
