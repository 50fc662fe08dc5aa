"""Score a checkpoint's generator: ``python src/eval.py ckpt_path=<run>/checkpoints/last.ckpt``."""

import hydra
from omegaconf import DictConfig

from ganforge.cli import run_job
from ganforge.jobs import evaluate_checkpoint
from ganforge.validate import validate_eval


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_job(evaluate_checkpoint, cfg, validate_eval)


if __name__ == "__main__":
    main()
