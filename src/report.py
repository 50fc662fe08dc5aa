"""Write a run's report: ``python src/report.py run_dir=outputs/train/runs/<time>``."""

import hydra
from omegaconf import DictConfig

from ganforge import jobs
from ganforge.cli import run_job


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
def main(cfg: DictConfig) -> None:
    run_job(jobs.report, cfg)


if __name__ == "__main__":
    main()
