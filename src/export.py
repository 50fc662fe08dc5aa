"""Export a generator to TorchScript and ONNX: ``python src/export.py ckpt_path=...``."""

import hydra
from omegaconf import DictConfig

from ganforge import jobs
from ganforge.cli import run_job
from ganforge.validate import validate_export


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_job(jobs.export, cfg, validate_export)


if __name__ == "__main__":
    main()
