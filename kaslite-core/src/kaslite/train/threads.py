"""How many threads torch trains with: one for small networks, whose steps are too short to share.

A small network's matrix products take microseconds; splitting them across
threads costs more in hand-offs than it saves, and on a busy machine the
threads wait on each other for whole time slices (``python bench/threads.py``
measures both). Large networks still get every thread torch would use.
"""

import torch

# Work per optimizer step, as parameters x batch rows, from which more than one thread pays
# (bench/threads.py: the default network, 9k parameters x 32 rows, trains about 1.5x faster idle on
# one thread than on two, and several times faster on one when other processes share the cores).
SHARED_FROM = 2**24


def auto_threads(parameters: int, batch_size: int, available: int) -> int:
    """One thread below :data:`SHARED_FROM` units of work per step, else ``available``."""
    return 1 if parameters * batch_size < SHARED_FROM else max(1, available)


def training_threads(setting: int, parameters: int, batch_size: int) -> int:
    """The thread count for ``train.threads = setting`` (0: automatic) and a network of ``parameters``."""
    if setting > 0:
        return setting
    return auto_threads(parameters, batch_size, torch.get_num_threads())
