"""Runs across processes, GPUs and machines: torchrun ranks and --shard K/N job arrays.

Samples are dealt round-robin: shard k of n explains positions k, k+n, k+2n, ... of the requested
samples, so each sample is explained exactly once and shards differ by at most one sample. Completion
is recorded per sample (samples/sample{i}.json), so --resume works whatever the number of ranks or
shards was before. Under torchrun (WORLD_SIZE > 1) every rank joins a process group (nccl between
GPUs, gloo on CPUs; bound to the rank's GPU), takes its shard and its own device (cuda:LOCAL_RANK; two
ranks on one GPU are refused before any work), and after a barrier rank 0
runs finalize over everyone's records. A rank that torchrun restarts (--max-restarts) resumes from the
records on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
    local_world_size: int = 1

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    @property
    def restarted(self) -> bool:
        """torchrun restarted the job after a failure: resume from the records on disk."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0

    def device(self, requested: str | None) -> str:
        """cuda:LOCAL_RANK on GPU machines (unless the CPU was asked for), else the CPU. One GPU per rank:
        more ranks on a machine than GPUs, or every rank sent to one `--device cuda:N`, is refused."""
        if requested not in (None, "", "auto", "cuda") or not torch.cuda.is_available():
            if str(requested).startswith("cuda:") and self.local_world_size > 1:
                raise XAIError(
                    f"under torchrun every rank takes its own GPU (cuda:LOCAL_RANK): ⟨device⟩ {requested} would put "
                    f"{self.local_world_size} ranks on one GPU; leave ⟨device⟩ out (or use CUDA_VISIBLE_DEVICES)"
                )
            return requested or "cpu"
        gpus = torch.cuda.device_count()
        if self.local_world_size > gpus:
            raise XAIError(
                f"{self.local_world_size} torchrun processes on this machine but {gpus} GPU(s): two ranks would share "
                f"a GPU; start at most {gpus} (--nproc-per-node {gpus})"
            )
        return f"cuda:{self.local_rank}"

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
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    gpu = torch.cuda.is_available() and requested_device not in ("cpu",)
    backend = "nccl" if gpu else "gloo"
    ranks = Ranks(rank=rank, world_size=world, local_rank=local, backend=backend, local_world_size=local_world)
    device = torch.device(ranks.device(requested_device))  # refuses two ranks on one GPU before any work
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # device_id binds the process group to this rank's GPU at once (NCCL then fails early, not at
            # the closing barrier, and barrier() needs no guess of the device)
            bound: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
            dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT, **bound)
    except (RuntimeError, ValueError) as exc:  # rendezvous, NCCL or device errors: one line, not a traceback
        raise XAIError(
            f"rank {rank} of {world} could not join the torchrun job ({backend}): {first_line(exc)}"
        ) from None
    log.info("rank %d of %d (%s, device %s)", rank, world, backend, device)
    return ranks
