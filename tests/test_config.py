"""Every option of every config group composes, and the README's commands are real ones."""

from __future__ import annotations

import re
import shlex

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, compose_config, run_cli

# groups that are mounted elsewhere (metrics: callbacks.metrics and eval.yaml; study: study.yaml)
# or need a sweeper/launcher plugin context
SPECIAL = {"hydra", "optimizer", "metrics", "study"}
# options that only make sense with another one (a vector model needs vector data)
COMPANIONS = {("model", "toy_mlp"): ["data=ring8"]}


def _options() -> list[tuple[str, str]]:
    pairs = []
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in SPECIAL):
        pairs += [(group.name, f.stem) for f in sorted(group.glob("*.yaml"))]
    return pairs


@pytest.mark.parametrize(("group", "option"), _options())
def test_every_group_option_composes_and_resolves(group: str, option: str, tmp_path) -> None:
    cfg = compose_config([f"{group}={option}", *COMPANIONS.get((group, option), [])], tmp_path)
    # resolving every interpolation catches typos in keys other configs point at
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if group in {"data", "model", "loss", "trainer"}:  # one object each
        target = OmegaConf.load(CONF / group / f"{option}.yaml").get("_target_")
        assert resolved[group]["_target_"] == (target or resolved[group]["_target_"])
        assert resolved[group]["_target_"].count(".") >= 1
    elif group in {"logger", "callbacks"}:  # a mapping of objects, each with its target
        assert all("_target_" in node for node in resolved[group].values() if node)


@pytest.mark.parametrize("option", ["adam", "rmsprop", "sgd"])
def test_optimizer_options_compose_for_both_networks(option: str, tmp_path) -> None:
    cfg = compose_config(
        [f"optimizer@model.optimizer_g={option}", f"optimizer@model.optimizer_d={option}"],
        tmp_path,
    )
    assert cfg.model.optimizer_g._target_ == cfg.model.optimizer_d._target_
    assert option in cfg.model.optimizer_g._target_.lower()


def test_wgan_switches_to_rmsprop_and_wgan_gp_to_its_adam(tmp_path) -> None:
    wgan = compose_config(["loss=wgan"], tmp_path)
    assert wgan.model.optimizer_d._target_ == "torch.optim.RMSprop"
    assert wgan.model.optimizer_d.lr == pytest.approx(5e-5)
    assert "betas" not in wgan.model.optimizer_d
    gp = compose_config(["loss=wgan_gp"], tmp_path)
    assert list(gp.model.optimizer_g.betas) == [0.0, 0.9]
    assert gp.loss.n_critic == 5 and gp.data.batches_per_step == 5


def test_image_size_flows_from_data_to_model(tmp_path) -> None:
    cfg = compose_config(["data.image_size=64"], tmp_path)
    assert cfg.model.generator.image_size == 64 == cfg.model.discriminator.image_size


def test_max_g_steps_speaks_in_generator_iterations(tmp_path) -> None:
    cfg = compose_config(["max_g_steps=100", "loss=wgan_gp"], tmp_path)
    assert cfg.trainer.max_steps == 100 * (5 + 1)
    cfg = compose_config(["max_g_steps=100", "loss.n_gen=2"], tmp_path)
    assert cfg.trainer.max_steps == 100 * (1 + 2)
    assert compose_config([], tmp_path).trainer.max_steps == -1


def test_help_lists_config_groups_and_options() -> None:
    out = run_cli(["src/train.py", "--help"])
    assert out.returncode == 0, out.stderr
    groups = dict(
        line.split(": ", 1) for line in out.stdout.splitlines() if re.match(r"^[a-z_]+: \w", line)
    )
    assert {"data", "model", "loss", "trainer", "logger", "callbacks", "debug"} <= set(groups)
    assert "mnist5k" in groups["data"] and "ring8" in groups["data"]
    assert {"dcgan", "gan_mlp", "resnet"} <= set(groups["model"].split(", "))
    assert {"minimax", "nonsaturating", "wgan_gp"} <= set(groups["loss"].split(", "))


def readme_train_commands() -> list[list[str]]:
    """The overrides of every `python src/train.py ...` command the README shows."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for match in re.finditer(r"python src/train\.py([^\n`&|;]*)", text):
        # placeholders such as <ts> stand for a user's own folder names
        line = re.sub(r"<[^>]+>", "x", match.group(1).split("#")[0])
        args = shlex.split(line)
        if "--help" not in args:
            commands.append(args)
    return commands


def test_readme_shows_train_commands() -> None:
    commands = readme_train_commands()
    assert [] in commands, "the README's main command (plain `python src/train.py`) is missing"
    assert len(commands) >= 3


@pytest.mark.parametrize("args", readme_train_commands(), ids=lambda a: " ".join(a) or "default")
def test_readme_train_commands_compose(args: list[str], tmp_path) -> None:
    overrides = [a for a in args if a != "-m"]
    if "-m" in args:  # a sweep: compose its first job
        overrides = [o.split(",")[0] if "=" in o and "," in o else o for o in overrides]
    OmegaConf.to_container(compose_config(overrides, tmp_path), resolve=True)


def test_training_and_eval_read_the_metric_settings_from_one_group(tmp_path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    train = compose_config(["logger=csv"], tmp_path).callbacks.metrics
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        evaluate = compose("eval", overrides=["metrics.seed=7"]).metrics
    group = OmegaConf.load(CONF / "metrics" / "default.yaml")
    assert set(evaluate) == set(group) and evaluate.seed == 7
    assert set(train) == set(group) | {"_target_", "every_n_epochs"}
    # training overrides only what makes the CPU default cheap
    differ = {k for k in group if k != "cache_dir" and train[k] != group[k]}
    assert differ == {"num_samples", "kid_subsets"}
