"""Offline evaluation: FID, IS, KID, precision/recall and mode coverage in a chosen feature space.

Feature spaces: ``digits`` (ganforge's own MNIST classifier, offline), ``inception``
(torchmetrics' InceptionV3, comparable with papers) and ``auto`` (digits for digit data).
"""

from ganforge.metrics.evaluate import METRIC_NAMES, Evaluator, make_evaluator, module_sampler
from ganforge.metrics.features import resolve_feature_space
from ganforge.metrics.suite import MetricSuite
from ganforge.pixels import to_uint8

__all__ = [
    "METRIC_NAMES",
    "Evaluator",
    "MetricSuite",
    "make_evaluator",
    "module_sampler",
    "resolve_feature_space",
    "to_uint8",
]
