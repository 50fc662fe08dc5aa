"""The prepare job: build a dataset's decoded cache once and, on request, LitData shards."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from ganforge.data.cache import DecodedCache
from ganforge.data.streaming import write_shards
from ganforge.errors import GanforgeError

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> None:
    """Decode ``cfg.data`` into its decoded cache (``data.cache_dir``, else
    ``paths.cache_dir/data``); with ``shards=<folder or URI>`` also write LitData shards."""
    cache_dir = cfg.data.get("cache_dir") or f"{cfg.paths.cache_dir}/data"
    datamodule = hydra.utils.instantiate(cfg.data)
    if not hasattr(datamodule, "cache_spec") or datamodule.name == "streaming":
        raise GanforgeError(f"data {datamodule.name!r} has nothing to prepare")
    num_workers = cfg.get("workers") or getattr(datamodule, "num_workers", 0)
    folder = DecodedCache(datamodule, cache_dir).prepare(num_workers)
    print(f"decoded cache: {folder}")
    shards = cfg.get("shards")
    if shards:
        write_shards(folder, str(shards), num_workers=num_workers)
        print(f"streaming shards: {shards}  (train with data=streaming data.path={shards})")
    log.debug("prepare config:\n%s", OmegaConf.to_yaml(cfg.data))
