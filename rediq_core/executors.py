"""Built-in executor pools for ``run_in_current_executor``: ``thread`` and ``process``.

Registered by the plugin-manager factory as a default plugin named ``executors``.
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

from .hookspecs import RegisterExecutorPool
from .markers import hookimpl

__all__ = ["rediq_register_executor_pools"]


def _thread_pool(size: int | None) -> Executor:
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix="rediq-executor")


def _process_pool(size: int | None) -> Executor:
    # imported here: a worker with the thread pool never loads multiprocessing
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn" keeps children free of the worker's event loop, sockets and threads.
    return ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))


@hookimpl(trylast=True)
def rediq_register_executor_pools(register: RegisterExecutorPool) -> None:
    register("thread", _thread_pool)
    register("process", _process_pool)
