"""``topodiff train``: train the crystal diffusion generator (Lightning, EMA, atomic checkpoints)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import print_json


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        overrides: Optional[list[str]] = typer.Argument(None, metavar="[KEY=VALUE]...",
                                                        help="dotted config overrides, e.g. trainer.max_steps=500"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML config (see --create-config)"),
        create_config: bool = typer.Option(False, "--create-config",
                                           help="print the complete default config (every key commented) and exit"),
        resume: bool = typer.Option(False, "--resume",
                                    help="continue from the newest readable checkpoint in output_dir (same run only)"),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="clear a non-empty output_dir that holds another run, then train"),
        json_out: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
    ) -> None:
        """Train the generator. Checkpoints go to output_dir as step=NNNNNN.ckpt and last.ckpt."""
        from topodiff.training.config import load_config, to_yaml

        cfg = load_config(config, overrides)
        if create_config:
            sys.stdout.write(to_yaml(cfg, header="topodiff training config: topodiff train --config FILE [KEY=VALUE ...]"))
            return
        saved = Path(cfg.output_dir) / "config.yaml"
        if resume and config is None and saved.is_file():  # resume with the run's own config
            cfg = load_config(saved, overrides)
        from topodiff.training.run_dir import claim_run_dir

        claim_run_dir(cfg, resume=resume, overwrite=overwrite)  # before any computing
        logger = logging.getLogger("topodiff")
        if not logger.handlers:  # progress and logs go to stderr; stdout is for the result
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        from topodiff.training.datasets import build_datasets

        datasets = build_datasets(cfg.data)  # bad data fails here, before Lightning is imported
        from topodiff.training.run import train

        summary = train(cfg, resume=resume, datasets=datasets)
        if summary.get("rank", 0) != 0:
            return
        if json_out:
            print_json(summary)
        else:
            rate = summary["crystals_per_s"]
            print(f"trained to step {summary['global_step']} ({rate:.1f} crystals/s); "
                  f"last checkpoint: {summary['last_checkpoint']}" if rate else
                  f"trained to step {summary['global_step']}; last checkpoint: {summary['last_checkpoint']}")
