"""The stage registry (qwenflow.stages) is the one list: recipe, runner, wiring and CLI agree with it."""

from typer.testing import CliRunner

from qwenflow.cli.main import app
from qwenflow.orchestration.stages import RUN
from qwenflow.recipe import Recipe, load_recipe
from qwenflow.stages import STAGES, SWITCHES, TRAINING, stage


def test_every_stage_has_a_core_function_and_its_recipe_sections_exist():
    assert list(RUN) == list(STAGES)
    fields = set(Recipe.model_fields)
    recipe = load_recipe("tiny")
    for s in STAGES.values():
        assert set(s.sections) <= fields, s.name
        if s.switch:  # the switch, init_from and (training) resources live in the section of the stage's name
            section = getattr(recipe, s.name)
            assert isinstance(section.enabled, bool), s.name
            assert not s.trains or hasattr(section, "init_from"), s.name
        if s.resources:
            assert hasattr(getattr(recipe, s.resources), "resources"), s.name


def test_wiring_only_reads_earlier_stages_main_outputs():
    order = list(STAGES)
    for s in STAGES.values():
        for _, source in s.inputs:
            assert order.index(source) < order.index(s.name) and STAGES[source].output, (s.name, source)
        for before in s.after:
            assert order.index(before) < order.index(s.name), (s.name, before)


def test_one_name_per_stage():
    assert set(TRAINING) <= set(SWITCHES)
    assert stage("long-context") is STAGES["long_context"]  # the CLI spelling of the same name
    for old in ("evaluate", "reward_model", "longctx", "longcontext"):
        try:
            stage(old)
        except ValueError as e:
            assert "stages: prepare_data, validate_data" in str(e)
        else:
            raise AssertionError(f"{old} is not a stage name")


def test_cli_names_come_from_the_registry():
    runner = CliRunner()
    listed = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert listed.exit_code == 0
    for name in TRAINING:
        assert f" {STAGES[name].cli_name} " in listed.output, name
    bad = runner.invoke(app, ["run", "--force", "evaluate", "--plain"])
    assert bad.exit_code == 2
    assert "--force evaluate: no such stage" in bad.output
    assert " ".join(bad.output.split()).endswith("stages: " + ", ".join(STAGES))
