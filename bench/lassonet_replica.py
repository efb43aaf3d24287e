"""Diagnostic: LassoNet's own training procedure written in JAX on jaxreg's operators.

Which part of LassoNet makes its breast-cancer path keep its dense accuracy down to 19–20
features (``nn_path.py``: best test accuracy with ≤ 20 features 0.971 over 5 splits, jaxreg's
warm path 0.964)? This script runs LassoNet's procedure (``lassonet`` 0.0.21 defaults) with
``jaxreg.models.skip_mlp`` and ``jaxreg.regularizers.HierarchicalLasso`` (whose prox equals
``lassonet.prox.prox`` to 1e-15), one full-data member per split, in a Python loop of jitted
steps:

- 10 % of the training rows held out (``train_test_split(random_state=seed)``);
- the dense fit: Adam at lr 1e-3, at most 1000 full-batch epochs, stopped after 100 epochs
  without a 1 % improvement of the held-out loss;
- the path: SGD with momentum 0.9 at lr 1e-3 and the Hier-Prox (M = 10) of step lr·λ, λ from
  ``0.02 · λ_ref`` (jaxreg's null-model λ at the dense fit) times 1.02 per λ until no feature is
  left, each λ at most 100 epochs, stopped after 10 without a 1 % improvement of the held-out
  penalized objective.

``--init jaxreg`` draws the initial parameters as ``skip_mlp`` does (weights normal with
variance 1/fan_in, zero biases); ``--init torch`` as ``torch.nn.Linear`` does (weights and
biases uniform on ±1/√fan_in). Prints, per split, the best test accuracy with ≤ 10 / ≤ 20
features and the reversals of the feature count; JSON:
``bench/results/lassonet_replica_<init>.json``.

    PYTHONPATH=src python bench/lassonet_replica.py --init torch
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.model_selection import train_test_split

import _common
import jaxreg
from jaxreg.regularizers import HierarchicalLasso
from nn_path import WIDTH, protocol

MULTIPLIER = 10.0
LEARNING_RATE = 1e-3


def torch_init(key: jax.Array, sizes: list[int]) -> dict:
    """``torch.nn.Linear``'s initialization: weights and biases uniform on ±1/√fan_in."""
    keys = iter(jax.random.split(key, 2 * len(sizes)))

    def uniform(shape, fan_in):
        return jax.random.uniform(next(keys), shape, minval=-1, maxval=1) / np.sqrt(fan_in)

    layers = [
        {"w": uniform((fan_in, out), fan_in), "b": uniform((out,), fan_in)}
        for fan_in, out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return {"mlp": layers, "skip": uniform((sizes[0], sizes[-1]), sizes[0])}


def replica_path(seed: int, init: str) -> dict:
    split = protocol("breast_cancer", seed)
    X, X_val, y, y_val = train_test_split(
        split["X_train"], split["y_train"], test_size=0.1, random_state=seed
    )
    sizes = [X.shape[1], WIDTH, int(y.max()) + 1]
    model = jaxreg.models.skip_mlp(sizes)
    key = jax.random.key(seed)
    params = torch_init(key, sizes) if init == "torch" else model.init(key)
    unit = HierarchicalLasso(1.0, multiplier=MULTIPLIER)

    def loss(p, inputs, labels):
        logits = model.apply(p, inputs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def optimizer(base, lam=0.0):
        prox = jaxreg.transforms.proximal(unit.replace(strength=lam), LEARNING_RATE)
        return optax.chain(base, prox)

    def stepper(base):
        @jax.jit
        def step(p, state, lam):
            tx = optimizer(base, lam)
            updates, state = tx.update(jax.grad(loss)(p, X, y), state, p)
            return optax.apply_updates(p, updates), state

        return step

    def held_out_objective(p, lam):
        penalty = lam * float(unit.value(p)) if lam > 0 else 0.0  # value is ∞ off the hierarchy
        return float(loss(p, X_val, y_val)) + penalty

    def train(p, state, step, lam, epochs, patience):
        best, since, taken = held_out_objective(p, lam), 0, 0
        for _ in range(epochs):
            p, state = step(p, state, jnp.float32(lam))
            taken += 1
            current = held_out_objective(p, lam)
            best, since = (current, 0) if current < 0.99 * best else (best, since + 1)
            if since == patience:
                break
        return p, state, taken

    adam, sgd = optax.adam(LEARNING_RATE), optax.sgd(LEARNING_RATE, momentum=0.9)
    params, _, _ = train(params, optimizer(adam).init(params), stepper(adam), 0.0, 1000, 100)
    leaves, treedef = jax.tree.flatten(params)
    selected = unit.selection(params)
    zeroed = treedef.unflatten(
        [jnp.zeros_like(x) if keep else x for x, keep in zip(leaves, selected, strict=True)]
    )
    lambda_ref = float(unit.dual_norm(jax.grad(loss)(zeroed, X, y)))
    step, state = stepper(sgd), optimizer(sgd).init(params)
    features, accuracy, epochs = [], [], []
    lam = 0.02 * lambda_ref
    while True:
        features.append(int(np.sum(np.linalg.norm(np.asarray(params["skip"]), axis=1) > 0)))
        predicted = np.argmax(model.apply(params, split["X_test"]), -1)
        accuracy.append(float(np.mean(predicted == split["y_test"])))
        if features[-1] == 0 or lam > 100 * lambda_ref:
            break
        params, state, taken = train(params, state, step, lam, 100, 10)
        epochs.append(taken)
        lam *= 1.02
    features, accuracy = np.array(features), np.array(accuracy)
    return {
        "best_10": float(accuracy[features <= 10].max()),
        "best_20": float(accuracy[features <= 20].max()),
        "reversals": int(np.sum(np.diff(features) > 0)),
        "models": len(features),
        "epochs_per_lambda": float(np.mean(epochs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", choices=("jaxreg", "torch"), default="torch")
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for seed in range(args.splits):
        rows.append(replica_path(seed, args.init))
        print(f"split {seed}: {rows[-1]}", flush=True)
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("best_10", "best_20")}
    print(f"init {args.init}: mean best test acc ≤ 10 / ≤ 20: "
          f"{means['best_10']:.3f} / {means['best_20']:.3f}")  # fmt: skip
    payload = {"init": args.init, "splits": rows, **means}
    _common.write_json(f"lassonet_replica_{args.init}", payload)


if __name__ == "__main__":
    main()
