"""Training config schema: defaults, YAML round trip, overrides, errors naming the key."""
from __future__ import annotations

import re

import pytest
import yaml
from omegaconf import OmegaConf

from topodiff.errors import TopodiffInputError
from topodiff.training.config import PRECISIONS, default_config, load_config, to_yaml

from training.helpers import REPO, TINY_CONFIG, run_cli


def _keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


def test_yaml_round_trip_and_every_key_commented(tmp_path):
    cfg = load_config(None, ["trainer.max_steps=123", "data.train=[a.csv,b.csv]", "optim.schedule=plateau",
                             "model.hidden=48"])
    text = to_yaml(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    again = load_config(path)
    assert again == cfg
    assert again.trainer.max_steps == 123 and list(again.data.train) == ["a.csv", "b.csv"]
    # every key of the config appears in the YAML with a comment (inline, or on the line above a section)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") or not line.strip():
            continue
        assert "#" in line or (i > 0 and lines[i - 1].lstrip().startswith("#")), line
    assert _keys(yaml.safe_load(text)) == _keys(OmegaConf.to_container(cfg))


def test_schema_has_contract_keys():
    cfg = default_config()
    for key in ("data.train", "data.val", "trainer.max_steps", "trainer.checkpoint_every", "output_dir",
                "data.batch_size", "data.num_workers", "data.split_seed", "optim.lr", "optim.weight_decay",
                "optim.warmup_steps", "optim.schedule", "optim.grad_clip", "trainer.val_every",
                "trainer.precision", "trainer.devices", "trainer.num_nodes", "trainer.strategy",
                "trainer.accelerator", "trainer.seed", "trainer.log_every", "ema.decay", "model.hidden"):
        assert OmegaConf.select(cfg, key, default="MISSING") != "MISSING", key
    assert cfg.trainer.precision in PRECISIONS


@pytest.mark.parametrize("override, key", [
    ("trainer.max_stepz=5", "trainer.max_stepz"),
    ("model.not_a_key=1", "model.not_a_key"),
    ("trainer.max_steps=ten", "trainer.max_steps"),
    ("optim.lr=fast", "optim.lr"),
    ("trainer.precision=64", "trainer.precision"),
    ("optim.schedule=linear", "optim.schedule"),
    ("trainer.devices=0", "trainer.devices"),
    ("ema.decay=1.5", "ema.decay"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every"),
])
def test_bad_override_names_key(override, key):
    with pytest.raises(TopodiffInputError, match=re.escape(key)):
        load_config(None, [override])


def test_bad_file_names_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("trainer:\n  max_steps: 10\n  bogus: 3\n")
    with pytest.raises(TopodiffInputError, match="trainer.bogus"):
        load_config(p)
    p.write_text("data:\n  batch_size: [1, 2]\n")
    with pytest.raises(TopodiffInputError, match="data.batch_size"):
        load_config(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(TopodiffInputError, match="mapping"):
        load_config(p)


def test_shipped_configs_load():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.trainer.max_steps > 0, path


def test_cli_create_config_reloads_to_same_config(tmp_path):
    res = run_cli("train", "--create-config")
    assert res.returncode == 0, res.stderr
    path = tmp_path / "default.yaml"
    path.write_text(res.stdout)
    assert load_config(path) == default_config()
    res = run_cli("train", "--config", str(TINY_CONFIG), "trainer.max_steps=7", "--create-config")
    assert res.returncode == 0, res.stderr
    path.write_text(res.stdout)
    assert load_config(path) == load_config(TINY_CONFIG, ["trainer.max_steps=7"])


def test_cli_unknown_key_exits_2(tmp_path):
    res = run_cli("train", "--config", str(TINY_CONFIG), "trainer.nonsense=1", f"output_dir={tmp_path}")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error:")
    assert "trainer.nonsense" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("train", "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "error:" in res.stderr


def test_cli_unusable_data_exits_2(tmp_path):
    empty = tmp_path / "bad.csv"
    empty.write_text(",material_id,cif\n0,x,not a cif\n")
    res = run_cli("train", "--config", str(TINY_CONFIG), f"data.train={empty}", f"output_dir={tmp_path / 'o'}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in res.stderr


def test_shipped_data_recipes_load():
    from topodiff.crystal.recipe import RECIPE_KEYS
    import yaml

    for path in sorted((REPO / "configs" / "data").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        assert set(recipe) <= RECIPE_KEYS, path
