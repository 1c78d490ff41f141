"""End-to-end: the combined network (paper sections 3.2 and 5.3, Eq. 4, Table 3).

The *combined network* is image -> perception -> Omega_hat (the 5-D bottleneck) -> control ->
9 Q-values, built from a perception and a control checkpoint and saved as one combined checkpoint
(``reach.end2end/1``).  The package, by role:

============ ===================================================================================
model.py     GradScale, CombinedNet, EndToEndModel (save/load), load_module (either half)
finetune.py  FinetuneConfig, weighted_losses (Eq. 4) and the fine-tuning loop (finetune)
evaluate.py  Observer (sim / hifi domains, robustness scenes), evaluate_rows, Table 3 text and plot
export.py    the ONNX (and TorchScript) file of a combined network; OnnxEndToEnd runs it
cli.py       ``reach train|eval|export end2end``
============ ===================================================================================

Everything public is importable from ``reach_core.end_to_end`` itself.
"""
from .cli import add_eval_cli, add_export_cli, add_train_cli
from .evaluate import (PAPER_TABLE3, Observer, evaluate_rows, format_table3, occluder_boxes, plot_table3,
                       set_tta)
from .export import OnnxEndToEnd, OnnxPerception, export_onnx, export_torchscript
from .finetune import (FINETUNE_EVAL_SEED, Collector, FinetuneConfig, PerceptionBatches, finetune,
                       plot_finetune, update, weighted_losses)
from .model import (CHECKPOINT_FORMAT, CombinedNet, EndToEndError, EndToEndModel, GradScale, load_module)

__all__ = [
    "CHECKPOINT_FORMAT", "FINETUNE_EVAL_SEED", "PAPER_TABLE3", "Collector", "CombinedNet", "EndToEndError",
    "EndToEndModel", "FinetuneConfig", "GradScale", "Observer", "OnnxEndToEnd", "OnnxPerception",
    "PerceptionBatches",
    "add_eval_cli", "add_export_cli", "add_train_cli", "evaluate_rows", "export_onnx", "export_torchscript",
    "finetune", "format_table3", "load_module", "occluder_boxes", "plot_finetune", "plot_table3", "set_tta",
    "update", "weighted_losses",
]
