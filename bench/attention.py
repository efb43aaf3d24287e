"""jaxreg.models.dot_product_attention vs jax.nn.dot_product_attention, forward + backward.

Both are timed in this process as ``jit(grad(loss))`` with respect to q, k and v, where
``loss = sum(attention(q, k, v) * cotangent)``, at several sequence lengths, interleaved, steady
state after a warm-up (the first call, with compilation, is reported separately). Memory comes
from the compiled programs' ``memory_analysis()``. Prints the time ratio (target <= 1.1) and the
machine's matmul GFLOP/s; writes ``bench/results/attention.json``.

    /work/venv/bin/python bench/attention.py [--seq-lens 128 256 512 1024] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _common import first_call_seconds, interleaved_medians, matmul_gflops, write_json  # noqa: E402
from jaxreg.models import dot_product_attention  # noqa: E402

IMPLEMENTATIONS = {"jaxreg": dot_product_attention, "jax.nn": jax.nn.dot_product_attention}


def _grad_fn(attention, is_causal):
    def loss(q, k, v, cotangent):
        return jnp.sum(attention(q, k, v, is_causal=is_causal) * cotangent)

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def _memory(compiled) -> dict[str, int]:
    stats = compiled.memory_analysis()
    return {
        "temp_bytes": int(stats.temp_size_in_bytes),
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
    }


def _flops(batch, seq, heads, head_dim):
    # QK^T and PV forward, and two matmuls each in the backward pass
    return 3 * 2 * (2 * batch * heads * seq * seq * head_dim)


def run(seq_lens, *, batch, heads, head_dim, repeats, is_causal):
    rows = []
    for seq in seq_lens:
        keys = jax.random.split(jax.random.key(seq), 4)
        shape = (batch, seq, heads, head_dim)
        q, k, v, cotangent = (jax.random.normal(key, shape, jnp.float32) for key in keys)
        args = (q, k, v, cotangent)
        fns = {name: _grad_fn(impl, is_causal) for name, impl in IMPLEMENTATIONS.items()}
        calls = {name: functools.partial(fn, *args) for name, fn in fns.items()}
        first = {name: first_call_seconds(call) for name, call in calls.items()}
        memory = {name: _memory(fn.lower(*args).compile()) for name, fn in fns.items()}
        grads = {name: call() for name, call in calls.items()}
        max_diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(grads["jaxreg"], grads["jax.nn"], strict=True)
        )
        medians = interleaved_medians(calls, repeats=repeats)
        ratio = medians["jaxreg"] / medians["jax.nn"]
        gflops = _flops(batch, seq, heads, head_dim) / medians["jaxreg"] / 1e9
        rows.append(
            {
                "seq": seq,
                "is_causal": is_causal,
                "seconds": medians,
                "first_call_seconds": first,
                "ratio_jaxreg_over_jax_nn": ratio,
                "jaxreg_gflops": gflops,
                "memory": memory,
                "max_abs_grad_diff": max_diff,
            }
        )
        print(
            f"seq {seq:5d} causal={is_causal!s:5}  jaxreg {medians['jaxreg'] * 1e3:8.2f} ms  "
            f"jax.nn {medians['jax.nn'] * 1e3:8.2f} ms  ratio {ratio:5.3f}  "
            f"temp MB {memory['jaxreg']['temp_bytes'] / 2**20:7.1f} vs "
            f"{memory['jax.nn']['temp_bytes'] / 2**20:7.1f}  "
            f"first call s {first['jaxreg']:.2f} vs {first['jax.nn']:.2f}  "
            f"max|Δgrad| {max_diff:.1e}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    gflops = matmul_gflops()
    print(f"machine matmul rate: {gflops:.1f} GFLOP/s (float32, 1024x1024)")
    config = {
        "batch": args.batch,
        "heads": args.heads,
        "head_dim": args.head_dim,
        "repeats": args.repeats,
        "dtype": "float32",
        "measured": "jit(grad(sum(attention(q, k, v) * cotangent))) w.r.t. q, k, v",
    }
    rows = []
    for is_causal in (False, True):
        rows += run(
            args.seq_lens,
            batch=args.batch,
            heads=args.heads,
            head_dim=args.head_dim,
            repeats=args.repeats,
            is_causal=is_causal,
        )
    ratios = [row["ratio_jaxreg_over_jax_nn"] for row in rows]
    print(f"ratio jaxreg / jax.nn: min {min(ratios):.3f}  max {max(ratios):.3f} (target <= 1.1)")
    write_json(
        "attention",
        {"matmul_gflops": gflops, "config": config, "results": rows, "max_ratio": max(ratios)},
    )


if __name__ == "__main__":
    main()
