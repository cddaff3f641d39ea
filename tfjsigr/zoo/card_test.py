
import numpy as np
import pytest

from tfjsigr.zoo import card as card_lib


def make_entry(tmp_path, **sections):
    entry = tmp_path / "zoo" / "plain"
    entry.mkdir(parents=True)
    card = {
        "name": "plain",
        "version": 1,
        "saved_model_versions": [1],
        "robustness": None,
        **sections,
    }
    card_lib.write_card(entry, card)
    return entry


def test_update_card_replaces_a_section_and_rerenders_the_readme(tmp_path):
    entry = make_entry(tmp_path, metrics={"clean_accuracy": 0.9})
    assert card_lib.PENDING in (entry / "README.md").read_text()
    robustness = {"pgd": {"eps_0.1": 0.41}, "ara": 0.0123}
    card = card_lib.update_card(entry, "robustness", robustness)
    assert card_lib.read_card(entry) == card and card["robustness"] == robustness
    assert card["metrics"] == {"clean_accuracy": 0.9}
    readme = (entry / "README.md").read_text()
    assert card_lib.PENDING not in readme
    assert "| pgd.eps_0.1 | 0.41 |" in readme and "| ara | 0.0123 |" in readme
    assert readme == card_lib.render_readme(card)


def test_read_card_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "card.json")):
        card_lib.read_card(tmp_path)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="card.json: corrupt model card"):
        card_lib.read_card(tmp_path)
    (tmp_path / "card.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        card_lib.read_card(tmp_path)


def test_update_card_of_a_missing_entry_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        card_lib.update_card(tmp_path / "zoo" / "absent", "robustness", {})
    assert list(tmp_path.iterdir()) == []


def test_readme_renders_nested_and_list_values(tmp_path):
    entry = make_entry(
        tmp_path,
        recipe={"optimizer": {"name": "adam", "lr": 0.001}, "penalties": [{"type": "jacobian"}]},
        data="fashion_mnist/test (sample)",
        extra_notes=["a", "b"],
    )
    readme = (entry / "README.md").read_text()
    assert "| optimizer.lr | 0.001 |" in readme
    assert '| penalties | `[{"type": "jacobian"}]` |' in readme
    assert "## Data\n\nfashion_mnist/test (sample)" in readme
    assert "## Extra notes\n\na, b" in readme


def test_card_or_lock_file_that_is_a_directory_is_a_value_error(tmp_path):
    (tmp_path / "card.json").mkdir()
    with pytest.raises(ValueError, match="card.json: corrupt model card \\(not a file\\)"):
        card_lib.read_card(tmp_path)
    (tmp_path / ".zoo.lock").mkdir()
    expected = ".zoo.lock: cannot open the zoo's lock file"
    with pytest.raises(ValueError, match=expected), card_lib.zoo_lock(tmp_path):
        pass


def test_readme_of_a_card_with_odd_versions_renders(tmp_path):
    assert "versions kept: ?" in card_lib.render_readme({"name": "jr", "saved_model_versions": 5})


def test_numbers_that_are_not_finite_are_written_as_null(tmp_path):
    entry = make_entry(tmp_path, metrics={"loss": float("nan"), "curve": [1.0, float("-inf")]})
    text = (entry / "card.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert card_lib.read_card(entry)["metrics"] == {"loss": None, "curve": [1.0, None]}
    robustness = {"ara": np.float32(np.inf)}
    assert card_lib.update_card(entry, "robustness", robustness)["robustness"] == robustness
    assert card_lib.read_card(entry)["robustness"] == {"ara": None}
