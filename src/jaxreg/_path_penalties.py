"""The penalties of a regularization path, in one registry that ``fit_path`` and the CLI read.

Each entry says how a penalty enters training at strength λ: its regularizer object at λ and
whether that object's proximal step follows the optimizer or a smooth term joins the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxreg import penalties
from jaxreg.regularizers import L1, L2, Box, ElasticNet, GroupLasso, MaxNorm, Regularizer

PyTree = Any


class PathOptions(NamedTuple):
    """The settings of a path that shape its penalty (None: not given)."""

    mask: PyTree
    l1_ratio: Any
    group_axis: Any
    joint: bool | None


class PathPenalty(NamedTuple):
    """How one penalty enters a path.

    Attributes:
        name: the name ``fit_path(penalty=...)`` takes (the CLI spells ``_`` as ``-``).
        base: the regularizer at λ = 1 (None for penalties that are not regularizer objects),
            built on the host; the member at λ is ``at(base, λ)``.
        at: ``(base, λ) -> regularizer`` of one member (λ may be traced).
        proximal: True when the member's regularizer is a proximal step after the optimizer;
            False when ``loss_term`` is added to the data loss.
        loss_term: ``(regularizer, params, pre_activations, λ, training) -> scalar`` for the
            smooth penalties (``training.activation`` is the MLP's hidden activation).
        needs_activations: the loss term reads the hidden pre-activations (an MLP's).
        default_span: ``(largest, smallest)`` λ of the default grid for penalties without a
            reference λ (no dual norm); None when λ_ref comes from the dual norm.
        positive_lambdas: λ must be > 0.
        linear_l1_ratio: the ``l1_ratio`` of the convex linear path that is the same penalty, or
            None.
    """

    name: str
    base: Callable[[PathOptions], Regularizer | None]
    at: Callable[[Regularizer | None, Any], Regularizer | None]
    proximal: bool
    loss_term: Callable[..., jax.Array] | None = None
    needs_activations: bool = False
    default_span: tuple[float, float] | None = None
    positive_lambdas: bool = False
    linear_l1_ratio: float | None = None

    @property
    def has_reference(self) -> bool:
        return self.default_span is None


def scale_strength(regularizer: Regularizer, lam: Any) -> Regularizer:
    """The regularizer with its strength multiplied by λ (glmnet's ``penalty.factor`` rule)."""
    return regularizer.replace(strength=jax.tree.map(lambda s: lam * s, regularizer.strength))


def _value_term(regularizer, params, pre_activations, lam, training):
    del pre_activations, lam, training
    return regularizer.value(params)


def _contractive_term(regularizer, params, pre_activations, lam, training):
    del regularizer
    weights = [layer["w"] for layer in params[: len(pre_activations)]]
    return lam * penalties.contractive(weights, pre_activations, training.activation)


PATH_PENALTIES: dict[str, PathPenalty] = {
    entry.name: entry
    for entry in (
        PathPenalty(
            "l1", lambda o: L1(1.0, mask=o.mask), scale_strength, True, linear_l1_ratio=1.0
        ),
        PathPenalty(
            "elastic_net",
            lambda o: ElasticNet(1.0, o.l1_ratio, mask=o.mask),
            scale_strength,
            True,
            linear_l1_ratio=0.5,
        ),
        PathPenalty(
            "group_lasso",
            lambda o: GroupLasso(1.0, group_axis=o.group_axis, joint=o.joint, mask=o.mask),
            scale_strength,
            True,
        ),
        PathPenalty(
            "l2",
            lambda o: L2(1.0, mask=o.mask),
            scale_strength,
            False,
            loss_term=_value_term,
            default_span=(1.0, 1e-4),
            linear_l1_ratio=0.0,
        ),
        PathPenalty(
            "contractive",
            lambda o: None,
            lambda base, lam: None,
            False,
            loss_term=_contractive_term,
            needs_activations=True,
            default_span=(1.0, 1e-4),
        ),
        PathPenalty(
            # the box [−1/λ, 1/λ]: a larger λ regularizes more, as for every other penalty
            "clip",
            lambda o: Box(-1.0, 1.0, mask=o.mask),
            lambda base, lam: base.replace(lower=base.lower / lam, upper=base.upper / lam),
            True,
            default_span=(10.0, 0.1),
            positive_lambdas=True,
        ),
    )
}


def for_regularizer(regularizer: Regularizer, options: PathOptions) -> PathPenalty:
    """The path penalty of a user's regularizer object: λ multiplies its strength; its mask,
    when it has one, replaces ``options.mask``."""
    if isinstance(regularizer, Box | MaxNorm):
        raise TypeError(
            f"penalty={type(regularizer).__name__}(...) is a constraint with no strength for λ "
            "to scale: use penalty='clip' for a box path, or a sparse or L2 regularizer"
        )
    for name in ("l1_ratio", "group_axis", "joint"):
        given, held = getattr(options, name), getattr(regularizer, name, None)
        if held is not None and given is not None and given != held:
            raise TypeError(
                f"{name}={given!r} contradicts penalty={regularizer!r}: set it on the object only"
            )
    if "mask" in regularizer.static and regularizer.mask is None:
        regularizer = regularizer.replace(mask=options.mask)
    smooth = isinstance(regularizer, L2)
    return PathPenalty(
        type(regularizer).__name__,
        lambda o: regularizer,
        scale_strength,
        not smooth,
        loss_term=_value_term if smooth else None,
        default_span=(1.0, 1e-4) if smooth else None,
    )


def resolve(penalty: str | Regularizer, options: PathOptions) -> PathPenalty:
    """The registry entry of a penalty name, or the entry of a regularizer object."""
    if isinstance(penalty, Regularizer):
        return for_regularizer(penalty, options)
    if penalty not in PATH_PENALTIES:
        raise ValueError(
            f"penalty must be one of {tuple(PATH_PENALTIES)} or a jaxreg.regularizers object, "
            f"got {penalty!r}"
        )
    return PATH_PENALTIES[penalty]
