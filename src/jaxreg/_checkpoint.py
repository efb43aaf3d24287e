"""Checkpoints of :func:`jaxreg.sweep.run_steps`: one ``.npz`` file (no pickle), written
atomically, and the fingerprint it must match to be resumed.

A fingerprint is a dict of named parts (``"grid"``, ``"key"``, the caller's own parts such as
``"--lr"``), each a digest of host values; a checkpoint stores it, and resuming compares it part
by part, so the error names what changed. Nothing here knows about devices or processes: the
sweep hands in numpy arrays and decides which process writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

NAME = "sweep_checkpoint.npz"
FORMAT = "jaxreg.sweep.run_steps/2"
_FINGERPRINT = "fp/"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: unreadable, not a sweep checkpoint, seen differently
    by different processes, or (:class:`CheckpointMismatchError`) written by another sweep."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was written by a sweep that differs in some fingerprint parts.

    Attributes:
      differing: the names of the parts that differ, in order: the sweep's own (``"grid"``,
        ``"num_steps"``, ``"chunk_size"``, ``"seeds"``, ``"key"``, ``"state/metrics
        structure"``, ``"data"``) and the names given in ``run_steps(fingerprint=...)``.
    """

    def __init__(self, message: str, differing: Sequence[str]):
        super().__init__(message)
        self.differing = tuple(differing)


def digest(tree: Any) -> str:
    """A digest of a pytree of host values: its structure and every leaf's dtype, shape, bytes."""
    hasher = hashlib.sha256(str(jax.tree.structure(tree)).encode())
    for leaf in jax.tree.leaves(tree):
        array = np.asarray(leaf)
        if array.dtype.kind == "O":
            raise TypeError(f"cannot fingerprint a value of type {type(leaf).__name__}")
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def _savable(array: np.ndarray) -> np.ndarray:
    """np.save stores only numpy's own dtypes without pickle: keep bfloat16 & co. as raw bits."""
    if array.dtype.kind == "V":
        return array.view(np.dtype(f"u{array.dtype.itemsize}"))
    return array


def contents(
    fingerprint: Mapping[str, str], steps_done: int, arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Everything a checkpoint file holds: format, fingerprint, step count and the arrays."""
    return {
        "format": np.asarray(FORMAT),
        "steps_done": np.asarray(steps_done),
        **{_FINGERPRINT + part: np.asarray(value) for part, value in fingerprint.items()},
        **arrays,
    }


def save(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write atomically: a temporary file in the same directory, then ``os.replace``."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".sweep_checkpoint.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **{name: _savable(a) for name, a in arrays.items()})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def load(path: str, checkpoint_dir: str) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not an npz archive (corrupted, or not "
            "a sweep checkpoint); delete it to start the sweep from scratch"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise CheckpointError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not a readable sweep checkpoint "
            f"({type(error).__name__}: {error}); delete it to start the sweep from scratch"
        ) from error


def check(
    saved: Mapping[str, np.ndarray], fingerprint: Mapping[str, str], checkpoint_dir: str, path: str
) -> int:
    """The number of steps a checkpoint holds, after checking it belongs to this sweep."""
    if str(saved.get("format", "")) != FORMAT:
        raise CheckpointError(
            f"checkpoint_dir {checkpoint_dir!r}: {path} is not a run_steps checkpoint of this "
            "jaxreg version; delete it or choose another checkpoint_dir"
        )
    stored = {
        name[len(_FINGERPRINT) :]: str(value)
        for name, value in saved.items()
        if name.startswith(_FINGERPRINT)
    }
    differing = [part for part, value in fingerprint.items() if stored.get(part) != value]
    differing += [part for part in stored if part not in fingerprint]
    if differing:
        raise CheckpointMismatchError(
            f"checkpoint_dir {checkpoint_dir!r} holds a checkpoint of a different sweep "
            f"(differs in: {', '.join(differing)}); resuming it would be wrong. Delete it or "
            "choose another checkpoint_dir",
            differing,
        )
    return int(restore(saved, "steps_done", None, 0, checkpoint_dir))


def restore(
    saved: Mapping[str, np.ndarray], name: str, like: Any, size: int, checkpoint_dir: Any
) -> np.ndarray:
    """One array of a checkpoint, checked against the shape (``size`` members) and dtype of
    ``like`` (None: a plain integer)."""
    if name not in saved:
        raise CheckpointError(f"checkpoint_dir {checkpoint_dir!r}: the checkpoint lacks {name!r}")
    array = saved[name]
    if like is None:
        if array.shape != () or array.dtype.kind not in "iu":
            raise CheckpointError(f"checkpoint_dir {checkpoint_dir!r}: {name!r} is not an integer")
        return array
    if jnp.issubdtype(like.dtype, jax.dtypes.prng_key):
        like = jax.eval_shape(jax.random.key_data, like)
    shape = (size,) + tuple(like.shape[1:])
    dtype = np.dtype(like.dtype)
    if array.dtype != dtype and array.dtype.itemsize == dtype.itemsize:
        array = array.view(dtype)  # bfloat16 & co. are stored as raw bits
    if array.shape != shape or array.dtype != dtype:
        raise CheckpointError(
            f"checkpoint_dir {checkpoint_dir!r}: {name!r} has shape {array.shape} and dtype "
            f"{array.dtype}, expected {shape} and {dtype}"
        )
    return array
