"""The transformer's Arrow allocator: the C library's, unless the user chose one."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from handlers.core.allocator import POOL_ENV, use_system_allocator


@pytest.fixture
def pool() -> Iterator[None]:
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


@pytest.mark.usefixtures("pool")
def test_the_system_allocator_by_default() -> None:
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    assert use_system_allocator({}) == "system"
    assert pa.default_memory_pool().backend_name == "system"


@pytest.mark.usefixtures("pool")
def test_a_pool_the_user_chose_is_left_alone() -> None:
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    assert use_system_allocator({POOL_ENV: "mimalloc"}) == "mimalloc"
