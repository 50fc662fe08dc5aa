"""Export a generator to TorchScript and ONNX: ``python src/export.py ckpt_path=...``."""

import hydra
from omegaconf import DictConfig

from ganforge import jobs
from ganforge.cli import run_job


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_job(jobs.export, cfg)


if __name__ == "__main__":
    main()
