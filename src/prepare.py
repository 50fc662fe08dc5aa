"""Decode a dataset once: ``python src/prepare.py data=celeba [shards=/data/celeba_shards]``."""

import hydra
from omegaconf import DictConfig

from ganforge.cli import run_job
from ganforge.config import register_resolvers
from ganforge.data.prepare import prepare

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    run_job(prepare, cfg)


if __name__ == "__main__":
    main()
