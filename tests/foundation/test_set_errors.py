"""A bad `--set` is reported as the flag's mistake, with the closest valid key, before any work starts."""

from typer.testing import CliRunner

from qwenflow.cli.main import app


def _err(args):
    res = CliRunner().invoke(app, args)
    return res.exit_code, " ".join(res.output.replace("│", " ").split())


def test_misspelt_key_names_the_flag_and_suggests_the_key():
    code, out = _err(["recipe", "show", "tiny", "--set", "sft.learnin_rate=1e-5"])
    assert code == 2
    assert "Invalid value for '--set'" in out and "did you mean sft.learning_rate?" in out
    assert "tiny.yaml" not in out  # the shipped recipe is not blamed


def test_bad_value_names_the_override():
    code, out = _err(["recipe", "show", "tiny", "--set", "sft.learning_rate=abc"])
    assert code == 2 and "'--set': sft.learning_rate=abc: Input should be a valid number" in out


def test_unknown_section_and_value_used_as_section():
    code, out = _err(["recipe", "show", "tiny", "--set", "sftx.lr=1"])
    assert code == 2 and "unknown key sftx; did you mean sft?" in out
    code, out = _err(["recipe", "show", "tiny", "--set", "sft.learning_rate.x=1"])
    assert code == 2 and "sft.learning_rate is a value, not a section" in out
    code, out = _err(["recipe", "show", "tiny", "--set", "no-equals-sign"])
    assert code == 2 and "expected KEY=VALUE" in out


def test_good_overrides_still_apply():
    res = CliRunner().invoke(
        app,
        [
            "recipe",
            "show",
            "tiny",
            "--set",
            "sft.learning_rate=3e-5",
            "--set",
            "pretrain.resources.node_selector.pool=a100",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3.0e-05" in res.output and "pool: a100" in res.output
