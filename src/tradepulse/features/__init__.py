"""Features: TA-Lib-exact batch indicator kernels (numba), their O(1) online twins, and one feature-set
definition shared by training and live inference."""

from __future__ import annotations

from tradepulse.features.bars import BarArrays, BarBuilder, ClosedBar, bars_from_ticks
from tradepulse.features.featureset import DEFAULT_FEATURES, KINDS, FeatureSet, FeatureSpec, OnlineFeatures

__all__ = [
    "DEFAULT_FEATURES",
    "KINDS",
    "BarArrays",
    "BarBuilder",
    "ClosedBar",
    "FeatureSet",
    "FeatureSpec",
    "OnlineFeatures",
    "bars_from_ticks",
]
