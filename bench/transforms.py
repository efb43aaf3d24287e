"""One optimizer step: ``chain(adam, prox_l1, clip_params)`` and ``prox_adam`` against ``adam``.

A ~1.07M-parameter MLP param tree (784→1024→256→10, a list of {"w", "b"}), gradients given, one
jitted ``update`` + ``optax.apply_updates`` per call, parameters and optimizer state donated.
All run in the same process with interleaved timings; each ratio is variant / bare adam. Two
targets: the chain ≤ 1.15× and ``jaxreg.prox_adam(lr, L1(λ, mask=weights_only))`` (the prox in
Adam's metric) ≤ 1.15×.

Run: /work/venv/bin/python bench/transforms.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import jax.numpy as jnp
import optax

import _common
import jaxreg

SIZES = (784, 1024, 256, 10)
LR = 1e-3
TARGET_RATIO = 1.15


def mlp_params(key: jax.Array) -> list[dict[str, jax.Array]]:
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (fan_in, fan_out)) / jnp.sqrt(fan_in)
        params.append({"w": w, "b": jnp.zeros(fan_out)})
    return params


class Stepper:
    """Carries params and optimizer state through a jitted step (buffers donated if asked)."""

    def __init__(self, tx, params, grads, *, donate: bool):
        def step(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        donate_argnums = (0, 1) if donate else ()
        self.step = jax.jit(step, donate_argnums=donate_argnums)
        self.params = jax.tree.map(jnp.copy, params)
        self.state = tx.init(self.params)
        self.grads = grads

    def __call__(self):
        self.params, self.state = self.step(self.params, self.state, self.grads)
        return self.params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved medians")
    args = parser.parse_args()

    params = mlp_params(jax.random.key(0))
    grads = jax.tree.map(lambda p: 1e-2 * jnp.ones_like(p), mlp_params(jax.random.key(1)))
    num_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    chain_name = "adam+prox_l1+clip_params"
    transforms = {
        "adam": optax.adam(LR),
        chain_name: optax.chain(
            optax.adam(LR), jaxreg.prox_l1(1e-4, LR), jaxreg.clip_params(-1.0, 1.0)
        ),
        # Breakdown: each jaxreg transform alone, and an optax-native extra for scale.
        "adam+prox_l1": optax.chain(optax.adam(LR), jaxreg.prox_l1(1e-4, LR)),
        "adam+clip_params": optax.chain(optax.adam(LR), jaxreg.clip_params(-1.0, 1.0)),
        "prox_adam(L1)": jaxreg.prox_adam(
            LR, jaxreg.regularizers.L1(1e-4, mask=jaxreg.masks.weights_only)
        ),
        "prox_adam(GroupLasso rows)": jaxreg.prox_adam(
            LR, jaxreg.regularizers.GroupLasso(1e-4, group_axis=0, mask=jaxreg.masks.weights_only)
        ),
        "adam+optax.add_decayed_weights": optax.chain(
            optax.adam(LR), optax.add_decayed_weights(1e-4)
        ),
    }
    load_before = os.getloadavg()
    gflops = _common.matmul_gflops()
    steppers = {name: Stepper(tx, params, grads, donate=True) for name, tx in transforms.items()}
    first = {name: _common.first_call_seconds(fn) for name, fn in steppers.items()}
    # Several rounds of interleaved medians: on a shared 2-core machine a single round can be
    # off by 10-20%; the median over rounds is the reported figure, the spread shows the noise.
    rounds = [
        _common.interleaved_medians(steppers, repeats=args.repeats, warmup=10)
        for _ in range(args.rounds)
    ]
    ratio_rounds = {
        name: [r[name] / r["adam"] for r in rounds] for name in transforms if name != "adam"
    }
    medians = {name: statistics.median(r[name] for r in rounds) for name in transforms}
    ratios = {name: statistics.median(values) for name, values in ratio_rounds.items()}
    print(f"steady-state step, donated buffers ({args.rounds} rounds x {args.repeats} steps):")
    for name, seconds in medians.items():
        spread = ratio_rounds.get(name, [1.0])
        print(
            f"    {name:32s} {seconds * 1e6:7.0f} us  x{ratios.get(name, 1.0):.3f} "
            f"[{min(spread):.3f}-{max(spread):.3f}]  first call {first[name] * 1e3:.0f} ms"
        )
    ratio = ratios[chain_name]
    print(f"params: {num_params:,}; matmul rate: {gflops:.1f} GFLOP/s; load {load_before}")
    print(f"ratio {chain_name} / adam = {ratio:.3f} (target <= {TARGET_RATIO})")
    print(f"ratio prox_adam(L1) / adam = {ratios['prox_adam(L1)']:.3f} (target <= {TARGET_RATIO})")
    _common.write_json(
        "transforms",
        {
            "command": "/work/venv/bin/python bench/transforms.py",
            "num_params": num_params,
            "matmul_gflops": gflops,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "load_average_before_after": [load_before, os.getloadavg()],
            "first_call_s": first,
            "median_step_s": medians,
            "ratio_vs_adam": ratios,
            "ratio_vs_adam_per_round": ratio_rounds,
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    main()
