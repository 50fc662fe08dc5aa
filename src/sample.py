"""Sample a trained generator: ``python src/sample.py ckpt_path=... n=64`` (``mode=interpolate``
for latent interpolations)."""

import hydra
from omegaconf import DictConfig

from ganforge import jobs
from ganforge.cli import run_job
from ganforge.validate import validate_sample


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(cfg: DictConfig) -> None:
    run_job(jobs.sample, cfg, validate_sample)


if __name__ == "__main__":
    main()
