"""Train a GAN: ``python src/train.py model=dcgan data=mnist5k loss=nonsaturating``."""

import hydra
from omegaconf import DictConfig

from ganforge.cli import run_job
from ganforge.config import register_resolvers
from ganforge.run import train
from ganforge.validate import validate_train

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_job(train, cfg, validate_train)


if __name__ == "__main__":
    main()
