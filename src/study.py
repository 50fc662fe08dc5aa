"""Run a study: ``python src/study.py study=mode_collapse`` (see conf/study/)."""

import hydra
from omegaconf import DictConfig

from ganforge.cli import run_job
from ganforge.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
def main(cfg: DictConfig) -> None:
    run_job(hydra.utils.get_method(cfg.study._target_), cfg)


if __name__ == "__main__":
    main()
