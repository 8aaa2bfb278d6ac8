"""CPU runtime settings: thread counts and bf16 support, read from the machine, never assumed."""

from __future__ import annotations

import gc
import math
import os
from functools import cache
from pathlib import Path
from typing import Any


def available_cpus() -> int:
    """CPUs this process may use: the cgroup quota (a container's CPU limit) or the affinity mask."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_max = Path("/sys/fs/cgroup/cpu.max")
    if cpu_max.exists():
        quota, _, period = cpu_max.read_text().partition(" ")
        if quota != "max" and period.strip():
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus)


def share_cpus(index: int, sharers: int) -> int:
    """Pin this process to its share of the CPUs it may use when `sharers` processes on one machine split them
    (the `index`-th of them): parallel tuning workers under kfp.local, which would otherwise each start a thread
    per CPU and oversubscribe them. Returns how many CPUs it keeps; in a pod, whose CPU quota is its own, leave
    it alone."""
    cpus = sorted(os.sched_getaffinity(0))
    if sharers <= 1 or len(cpus) <= 1:
        return len(cpus)
    share = cpus[index % sharers :: sharers] or [cpus[index % len(cpus)]]
    os.sched_setaffinity(0, share)
    return len(share)


def configure_torch_threads(threads: int = 0) -> int:
    """Match torch's intra-op threads to the CPUs we may use (or `threads`, when positive), shared among the
    processes torchrun started on this machine (LOCAL_WORLD_SIZE); oversubscription slows small models."""
    import torch

    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    threads = threads if threads > 0 else max(1, available_cpus() // local_processes)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX512-BF16 or AMX): autocast is then a large win."""
    import torch

    if os.environ.get("TEXTCLF_DISABLE_BF16", "").lower() in {"1", "true", "yes"}:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    library = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(library) if library else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Hand freed heap pages back to the OS (glibc's malloc_trim). A server running tensors of ever-changing
    shapes fragments the heap: without this its resident memory creeps up under steady traffic."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def settle_long_lived_objects() -> int:
    """Collect garbage once, then move every surviving object out of the cycle collector's reach
    (`gc.freeze`); returns how many were moved. Call once a long-lived process has loaded what it keeps.

    A server with a model loaded holds ~580,000 Python objects (torch, transformers, kserve and their modules);
    every full collection walks all of them, and on a 2-core machine each one stopped the server for up to
    450 ms under load: the slowest requests' latency. Frozen, they are no longer walked (refcounting still frees
    them). A previous freeze is undone first, so the cycles of a model loaded before are collected now."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
