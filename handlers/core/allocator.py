"""Which allocator Arrow's buffers come from in the transformer: the C library's."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pyarrow as pa

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"  # Arrow's own setting; when set, it is left alone


def use_system_allocator(environ: Mapping[str, str] | None = None) -> str:
    """Make the C library's malloc Arrow's default pool, unless the user chose one; its name.

    Measured on the 1M-record bench file (`make bench`, docs/performance.md): with
    glibc's malloc the transformer peaks 40 - 65 MB lower than with pyarrow's bundled
    mimalloc and runs no slower. Large buffers (a chunk's columns) go back to the system
    when freed instead of staying in the pool, which is what lets a third chunk be in
    flight within the same memory. Buffers already made keep the pool that made them.
    """
    env = os.environ if environ is None else environ
    if not env.get(POOL_ENV):
        pa.set_memory_pool(pa.system_memory_pool())
    return pa.default_memory_pool().backend_name
