"""SLURM batch scripts for multi-node, multi-GPU training.

One task per GPU: ``#SBATCH --ntasks-per-node=G`` and ``--gpus-per-node=G``, and ``srun`` starts
``topodiff train`` once per task. Lightning's ``SLURMEnvironment`` reads ``SLURM_PROCID``,
``SLURM_LOCALID``, ``SLURM_NTASKS`` and the node list, so the script must NOT wrap the command in
``torchrun`` / ``torch.distributed.launch`` (under ``srun`` that would start G² processes per node).
``trainer.devices`` and ``trainer.num_nodes`` must equal G and N; the script passes them. With
``--requeue`` the job resumes from its newest checkpoint after preemption (``--resume`` starts
fresh when there is none).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from topodiff.errors import TopodiffInputError

_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
_NAME = re.compile(r"^[A-Za-z0-9_.,+-]+$")


@dataclass
class SlurmJob:
    """A multi-node training job.

    Attributes
    ----------
    nodes : number of nodes N.
    gpus_per_node : GPUs (= tasks) per node G.
    time : wall-clock limit, SLURM format (``HH:MM:SS``, ``D-HH:MM``, ...).
    partition, account : optional SLURM partition and account.
    config : training config file passed as ``--config``.
    overrides : extra ``key=value`` config overrides.
    cpus_per_task : CPU cores per task (data loading, ``trainer.num_threads``).
    job_name : ``#SBATCH --job-name``.
    requeue : add ``--requeue`` and the ``--resume`` flag (continue after preemption).
    setup : shell lines run before ``srun`` (module loads, ``source .venv/bin/activate``).
    executable : the ``topodiff`` command.
    """

    nodes: int
    gpus_per_node: int
    time: str = "24:00:00"
    partition: str | None = None
    account: str | None = None
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    cpus_per_task: int = 8
    job_name: str = "topodiff-train"
    requeue: bool = True
    setup: list[str] = field(default_factory=list)
    executable: str = "topodiff"

    def validate(self) -> None:
        if self.nodes < 1:
            raise TopodiffInputError(f"--nodes must be >= 1, got {self.nodes}")
        if self.gpus_per_node < 1:
            raise TopodiffInputError(f"--gpus-per-node must be >= 1, got {self.gpus_per_node}")
        if self.cpus_per_task < 1:
            raise TopodiffInputError(f"--cpus-per-task must be >= 1, got {self.cpus_per_task}")
        if not _TIME.match(self.time):
            raise TopodiffInputError(f"--time {self.time!r} is not a SLURM time (HH:MM:SS, D-HH:MM, MM, ...)")
        for name, value in (("--partition", self.partition), ("--account", self.account), ("--job-name", self.job_name)):
            if value is not None and not _NAME.match(value):
                raise TopodiffInputError(f"{name} {value!r} has characters SLURM does not accept")
        for item in self.overrides:
            key = item.partition("=")[0]
            if "=" not in item or not key:
                raise TopodiffInputError(f"override must be key=value, got {item!r}")
            if key in ("trainer.devices", "trainer.num_nodes"):
                raise TopodiffInputError(f"{key} is set from --gpus-per-node/--nodes; do not override it")


def render_script(job: SlurmJob) -> str:
    """The ``sbatch`` script text for ``job`` (validated first)."""
    job.validate()
    n, g = job.nodes, job.gpus_per_node
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job.job_name}",
        f"#SBATCH --nodes={n}",
        f"#SBATCH --ntasks-per-node={g}",
        f"#SBATCH --gpus-per-node={g}",
        f"#SBATCH --cpus-per-task={job.cpus_per_task}",
        f"#SBATCH --time={job.time}",
    ]
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    if job.account:
        lines.append(f"#SBATCH --account={job.account}")
    if job.requeue:
        lines.append("#SBATCH --requeue")
    lines += [
        "#SBATCH --output=%x-%j.out",
        "",
        f"# {n} node(s) x {g} GPU(s) = {n * g} training processes, one per GPU, started by srun.",
        "# Lightning reads SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS itself: no torchrun here.",
        "set -euo pipefail",
        f"export OMP_NUM_THREADS={job.cpus_per_task}",
        "export NCCL_ASYNC_ERROR_HANDLING=1",
        *job.setup,
        "",
    ]
    cmd = [job.executable, "train"]
    if job.config:
        cmd += ["--config", job.config]
    if job.requeue:
        cmd.append("--resume")
    cmd += list(job.overrides)
    cmd += ["trainer.accelerator=gpu", f"trainer.devices={g}", f"trainer.num_nodes={n}", "trainer.strategy=ddp",
            f"trainer.num_threads={job.cpus_per_task}"]
    lines.append("srun " + " ".join(shlex.quote(c) for c in cmd))
    return "\n".join(lines) + "\n"
