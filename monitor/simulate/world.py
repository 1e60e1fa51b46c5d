"""The world model of a scenario: `World` (the parameters of p(y | x, segment) and of the
decision rule) and the vectorised math that draws from it and tunes it.

`Scenario.world` builds a `World` once per world-defining settings; `generate` draws rows from
it. Both import this module and it imports neither at run time, so the three form a chain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from monitor.simulate.scenario import Scenario

CATEGORY_LEVELS = ("a", "b", "c", "d", "e", "f")


@dataclass
class Inputs:
    """The inputs of n rows as indices and standardised values (before naming them)."""

    z: np.ndarray  # (n, n_numeric) standardised numeric features
    categories: np.ndarray  # (n, n_categorical) level index per categorical feature
    segments: dict[str, np.ndarray]  # segment name -> value index per row


@dataclass(frozen=True)
class World:
    """The fixed parameters of p(y | x) and of the decision rule, derived from a scenario."""

    numeric_mean: np.ndarray  # (n_numeric,) location of each numeric feature
    numeric_sd: np.ndarray  # (n_numeric,) scale: the reference standard deviation
    numeric_weights: np.ndarray  # (n_numeric, n_classes) logit weight per standardised feature
    category_probs: tuple[np.ndarray, ...]  # per categorical feature: level probabilities
    category_effects: tuple[np.ndarray, ...]  # per categorical feature: (levels, n_classes)
    segment_effects: dict[str, np.ndarray]  # per segment: (values, n_classes)
    intercepts: np.ndarray  # (n_classes,) tuned so the class mix matches the priors
    thresholds: dict[int, float]  # minority class index -> score threshold for prediction

    @staticmethod
    def build(scenario: Scenario) -> World:
        rng = np.random.default_rng(scenario.model_seed)
        k = len(scenario.classes)
        n_num, n_cat = scenario.n_numeric, scenario.n_categorical
        # Feature effects decay with the feature index, so a few features matter most.
        decay = 1.0 / np.sqrt(1.0 + np.arange(n_num))[:, None]
        weights = rng.normal(0.0, 1.0, size=(n_num, k)) * decay
        weights[:, 0] = 0.0  # the first class is the baseline of the softmax
        weights[:, -1] *= 1.6  # the rare class is the most separable (recall is achievable)
        probs, effects = [], []
        for _ in range(n_cat):
            levels = len(CATEGORY_LEVELS) - int(rng.integers(0, 3))
            p = 1.0 / np.arange(1, levels + 1) ** 0.8
            probs.append(p / p.sum())
            effect = rng.normal(0.0, 0.4, size=(levels, k))
            effect[:, 0] = 0.0
            effects.append(effect)
        segment_effects = {}
        for name in scenario.segments:
            effect = rng.normal(0.0, 0.25, size=(len(scenario.segment_values(name)), k))
            effect[:, 0] = 0.0
            segment_effects[name] = effect
        world = World(
            numeric_mean=np.round(rng.uniform(-2, 50, size=n_num), 1),
            numeric_sd=np.round(rng.uniform(0.5, 12, size=n_num), 2),
            numeric_weights=weights,
            category_probs=tuple(probs),
            category_effects=tuple(effects),
            segment_effects=segment_effects,
            intercepts=np.log(scenario.priors),
            thresholds={},
        )
        pilot = draw_world_rows(
            scenario, world, 100_000, np.random.default_rng(scenario.model_seed + 1)
        )
        return tune_world(scenario, world, pilot)


def draw_world_rows(scenario: Scenario, world: World, n: int, rng: np.random.Generator) -> Inputs:
    """Draw n rows of inputs from the fault-free world."""
    z = rng.standard_normal((n, scenario.n_numeric))
    categories = np.empty((n, scenario.n_categorical), dtype=np.int64)
    for j, probs in enumerate(world.category_probs):
        categories[:, j] = draw_index(rng, probs, n)
    segments = {
        name: draw_index(rng, scenario.segment_weights(name), n) for name in scenario.segments
    }
    return Inputs(z=z, categories=categories, segments=segments)


def draw_index(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    """Categorical draw by inverse CDF (faster than rng.choice for large n)."""
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(probs) - 1)


def feature_logits(world: World, inputs: Inputs) -> np.ndarray:
    """The linear part of the class logits, without the intercepts."""
    logits = inputs.z @ world.numeric_weights
    for j, effect in enumerate(world.category_effects):
        logits += effect[inputs.categories[:, j]]
    for name, effect in world.segment_effects.items():
        logits += effect[inputs.segments[name]]
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in place."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def probabilities(world: World, inputs: Inputs) -> np.ndarray:
    """True p(y | x, segment): softmax of a linear function of features and segment effects."""
    return softmax(feature_logits(world, inputs) + world.intercepts)


def draw_classes(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One class index per row drawn from its probability vector."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)


def logged_scores(scenario: Scenario, probs: np.ndarray) -> np.ndarray:
    """The scores the model logs: the true probabilities, or sharpened ones when not calibrated."""
    if scenario.calibrated:
        return probs.copy()
    sharpened = probs ** (1.0 / scenario.miscalibration)
    return sharpened / sharpened.sum(axis=1, keepdims=True)


def predict(scenario: Scenario, world: World, scores: np.ndarray) -> np.ndarray:
    """Decision rule: a minority class when its score reaches its threshold (rarest wins),
    else the highest-scoring other class."""
    minority = sorted(world.thresholds, key=lambda c: -scenario.priors[c])
    others = [c for c in range(scores.shape[1]) if c not in world.thresholds] or list(
        range(scores.shape[1])
    )
    predicted = np.asarray(others)[scores[:, others].argmax(axis=1)]
    for c in minority:
        predicted[scores[:, c] >= world.thresholds[c]] = c
    return predicted


def tune_world(scenario: Scenario, world: World, pilot: Inputs) -> World:
    """Fit intercepts so the class mix matches the priors, then the minority thresholds so
    each minority class has `target_recall` on fault-free data."""
    target = scenario.priors
    intercepts = world.intercepts.copy()
    base = feature_logits(world, pilot)
    for _ in range(100):
        mean = softmax(base + intercepts).mean(axis=0)
        intercepts += np.log(target / mean)
        if np.abs(mean / target - 1.0).max() < 1e-3:
            break
    world = replace(world, intercepts=intercepts)
    probs = probabilities(world, pilot)
    truth = draw_classes(np.random.default_rng(scenario.model_seed + 2), probs)
    scores = logged_scores(scenario, probs)
    thresholds = {}
    for c, name in enumerate(scenario.classes):
        if name in scenario.minority_classes and (truth == c).any():
            thresholds[c] = float(np.quantile(scores[truth == c, c], 1.0 - scenario.target_recall))
    return replace(world, thresholds=thresholds)
