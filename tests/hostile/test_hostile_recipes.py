"""Bad recipes and bad flags: each is refused with a non-zero exit and one line naming the key or the flag."""

import pytest
import yaml

from qwenflow.recipe.loader import shipped_dir


@pytest.mark.parametrize(
    "override, key, why",
    [
        ("pretrain.learning_rate=-1", "pretrain.learning_rate", "greater than 0"),
        ("reward.learning_rate=.nan", "reward.learning_rate", "finite"),
        ("dpo.learning_rate=-1", "dpo.learning_rate", "greater than 0"),
        ("grpo.learning_rate=.inf", "grpo.learning_rate", "finite"),
        ("sft.max_seq_len=0", "sft.max_seq_len", "greater than or equal to 1"),
        ("sft.epochs=-1", "sft.epochs", "greater than 0"),
        ("model.hidden_size=10000000", "model.hidden_size", "less than or equal to 65536"),
        ("model.vocab_size=1000000000000", "model.vocab_size", "less than or equal to 1048576"),
        ("sft.learning_rate=[1", "sft.learning_rate", "not valid YAML"),
        ("sft.learning_rate={a: [}", "sft.learning_rate", "not valid YAML"),
        ("sft.learnig_rate=1e-5", "sft.learnig_rate", "did you mean sft.learning_rate"),
        ("data.contracts.sft_max_duplicate_rate=2", "data.contracts.sft_max_duplicate_rate", "less than or equal to 1"),
    ],
)
def test_bad_set_values_exit_nonzero_with_one_line_naming_the_flag(qwenflow, override, key, why):
    line = qwenflow("recipe", "show", "tiny", "--set", override).error_line(key, why)
    assert "--set" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["model", "info", "-r", "tiny", "--gpus", "abc"], ["'--gpus'"]),
        (["recipe", "show", "tiny", "--bogus"], ["--bogus"]),
        (["data", "validate"], ["kind"]),
    ],
)
def test_cli_parse_errors_are_one_line_naming_the_flag(qwenflow, args, words):
    qwenflow(*args).error_line("error:", *words)


def test_a_bad_recipe_file_is_refused_naming_file_and_keys(qwenflow, tmp_path):
    raw = yaml.safe_load((shipped_dir() / "tiny.yaml").read_text())
    raw["sft"]["max_seq_len"] = 0
    raw["pretrain"]["learning_rate"] = float("nan")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    r = qwenflow("recipe", "validate", str(bad))
    assert r.rc != 0 and "Traceback" not in r.err + r.out
    assert str(bad) in r.err
    r.error_line("sft.max_seq_len", "greater than or equal to 1")
    r.error_line("pretrain.learning_rate", "finite")
    bad.write_text("model: [unclosed")
    qwenflow("recipe", "validate", str(bad)).error_line(str(bad), "not valid YAML")
