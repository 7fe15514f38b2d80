"""Runs across processes, GPUs and machines: torchrun ranks and --shard K/N job arrays.

Samples are dealt round-robin: shard k of n explains positions k, k+n, k+2n, ... of the requested
samples, so each sample is explained exactly once and shards differ by at most one sample. Completion
is recorded per sample (samples/sample{i}.json), so --resume works whatever the number of ranks or
shards was before. Under torchrun (WORLD_SIZE > 1) every rank joins a process group (nccl between
GPUs, gloo on CPUs), takes its shard and its own device (cuda:LOCAL_RANK), and after a barrier rank 0
runs finalize over everyone's records. A rank that torchrun restarts (--max-restarts) resumes from the
records on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..errors import XAIError, first_line

log = logging.getLogger(__name__)
BARRIER_TIMEOUT = timedelta(hours=48)  # ranks wait for the slowest before finalize


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def take(self, indices: Sequence[int]) -> list[int]:
        """Positions index, index + count, ... of indices: balanced, each sample in exactly one shard."""
        return list(indices[self.index :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """'K/N' with 0 <= K < N."""
    k, sep, n = text.partition("/")
    try:
        shard = Shard(int(k), int(n))
    except ValueError:
        raise XAIError(f"--shard must be K/N (this job's index and the number of jobs), got '{text}'") from None
    if not sep or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise XAIError(f"--shard K/N needs 0 <= K < N, got '{text}'")
    return shard


@dataclass
class Ranks:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    @property
    def restarted(self) -> bool:
        """torchrun restarted the job after a failure: resume from the records on disk."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0

    def device(self, requested: str | None) -> str:
        """cuda:LOCAL_RANK on GPU machines (unless the CPU was asked for), else the CPU."""
        if requested not in (None, "", "auto", "cuda") or not torch.cuda.is_available():
            return requested or "cpu"
        return f"cuda:{self.local_rank % torch.cuda.device_count()}"

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join_torchrun(requested_device: str | None) -> Ranks | None:
    """The process group of a torchrun job (WORLD_SIZE > 1 in the environment), or None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = torch.cuda.is_available() and requested_device not in ("cpu",)
    backend = "nccl" if gpu else "gloo"
    ranks = Ranks(rank=rank, world_size=world, local_rank=local, backend=backend)
    try:
        if gpu:
            torch.cuda.set_device(torch.device(ranks.device(requested_device)))
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)
    except (RuntimeError, ValueError) as exc:  # rendezvous, NCCL or device errors: one line, not a traceback
        raise XAIError(
            f"rank {rank} of {world} could not join the torchrun job ({backend}): {first_line(exc)}"
        ) from None
    log.info("rank %d of %d (%s, device %s)", rank, world, backend, ranks.device(requested_device))
    return ranks
