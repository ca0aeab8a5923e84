"""``topodiff slurm``: write a SLURM script for multi-node training (one srun task per GPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @app.command("slurm")
    def slurm_cmd(
        overrides: Optional[list[str]] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                                        help="training config overrides passed to topodiff train"),
        nodes: int = typer.Option(1, "--nodes", help="number of nodes"),
        gpus_per_node: int = typer.Option(..., "--gpus-per-node", help="GPUs (= srun tasks) per node"),
        time: str = typer.Option("24:00:00", "--time", help="wall-clock limit (SLURM format)"),
        partition: Optional[str] = typer.Option(None, "--partition"),
        account: Optional[str] = typer.Option(None, "--account"),
        config: Optional[Path] = typer.Option(None, "--config", help="training config file"),
        cpus_per_task: int = typer.Option(8, "--cpus-per-task", help="CPU cores per GPU task"),
        job_name: str = typer.Option("topodiff-train", "--job-name"),
        requeue: bool = typer.Option(True, "--requeue/--no-requeue",
                                     help="requeue on preemption and resume from the newest checkpoint"),
        setup: Optional[list[str]] = typer.Option(None, "--setup", help="shell line to run before srun (repeatable)"),
        out: Optional[Path] = typer.Option(None, "--out", help="write the script here (default: stdout)"),
    ) -> None:
        """Write an sbatch script that runs `topodiff train` on NODES x GPUS processes via srun."""
        from topodiff.hpc.slurm import SlurmJob, render_script
        from topodiff.io_utils import atomic_write_text

        from topodiff.io_utils import check_output_file
        from topodiff.training.config import load_config

        if config is not None and not config.is_file():
            raise TopodiffInputError(f"config file not found: {config}")
        load_config(config, overrides)  # the whole training config is checked now, not in the queue
        if out is not None:
            check_output_file(out, overwrite=True)
        job = SlurmJob(nodes=nodes, gpus_per_node=gpus_per_node, time=time, partition=partition, account=account,
                       config=str(config) if config else None, overrides=list(overrides or []),
                       cpus_per_task=cpus_per_task, job_name=job_name, requeue=requeue, setup=list(setup or []))
        text = render_script(job)
        if out is None:
            typer.echo(text, nl=False)
        else:
            atomic_write_text(out, text)
            Path(out).chmod(0o755)
            typer.echo(f"wrote {out}: sbatch {out}", err=True)
