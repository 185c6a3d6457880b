"""Keep freed memory in the process heap on glibc, so large CPU tensors are not page-faulted afresh every step.

PyTorch's CPU allocator has no cache: each large tensor (a (B, T, d) activation at batch 4096 is 16 MB, a stack of
depth states more) is malloc'd and freed every step. glibc serves blocks above its mmap threshold with a fresh
mmap and unmaps them on free, so every step zero-fills and page-faults all of its activation memory again. Raising
the mmap and trim thresholds (glibc's ``mallopt``, the same as the MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
environment variables) lets freed blocks be reused. A micro-benchmark of one depth read (B=4096, T=16, M=5, d=64,
forward + backward) went from 0.5 s to 0.16 s per call with it. No effect off glibc.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 34) -> bool:
    """Raise glibc's mmap/trim thresholds for this process; True when applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # glibc caps M_MMAP_THRESHOLD at HEAP_MAX / 2 (32 MiB on 64-bit is the dynamic max; explicit values up to
    # 512 MiB-1 GiB are accepted on most builds); fall back to smaller values if refused.
    for threshold in (mmap_threshold, 1 << 29, 1 << 25):
        if mallopt(M_MMAP_THRESHOLD, ctypes.c_int(min(threshold, 2**31 - 1))) == 1:
            break
    else:
        return False
    mallopt(M_TRIM_THRESHOLD, ctypes.c_int(min(trim_threshold, 2**31 - 1)))
    return True
