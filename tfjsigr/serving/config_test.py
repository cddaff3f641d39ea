"""Tests of the TF Serving configuration files."""

import pathlib

import pytest
from google.protobuf import text_format

from tfjsigr.serving import config as config_lib


def fake_zoo(root, entries):
    """A zoo layout without real models: {name: [versions]} with empty saved_model.pb files."""
    for name, versions in entries.items():
        for version in versions:
            path = pathlib.Path(root) / name / "saved_model" / str(version)
            path.mkdir(parents=True)
            (path / "saved_model.pb").write_bytes(b"")
    return pathlib.Path(root)


def test_one_entry_per_model_with_latest_policy_and_labels(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1], "jsigr": [1, 2, 3]})
    (zoo / "jsigr" / "saved_model" / ".4.staging").mkdir()
    (zoo / "recipes").mkdir()
    config = config_lib.build_model_server_config(zoo)
    entries = {e.name: e for e in config.model_config_list.config}
    assert sorted(entries) == ["jsigr", "plain"]
    assert entries["jsigr"].base_path == "/models/jsigr/saved_model"
    assert entries["jsigr"].model_platform == "tensorflow"
    assert entries["jsigr"].model_version_policy.latest.num_versions == 2
    assert dict(entries["jsigr"].version_labels) == {"stable": 2, "canary": 3}
    assert dict(entries["plain"].version_labels) == {"stable": 1}


def test_written_files_parse_and_compose_mounts_the_zoo_read_only(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1, 2]})
    written = config_lib.write_serving_config(zoo, tmp_path / "serving")
    assert sorted(written) == sorted(
        ["models.config", "batching.config", "monitoring.config", "docker-compose.yml", "README.md"]
    )
    parsed = config_lib.load_model_server_config(written["models.config"])
    assert [e.name for e in parsed.model_config_list.config] == ["plain"]
    compose = written["docker-compose.yml"].read_text()
    assert "../zoo:/models:ro" in compose
    assert '"127.0.0.1:8500:8500"' in compose and '"127.0.0.1:8501:8501"' in compose
    assert "tensorflow/serving" in compose
    assert "max_batch_size { value: 64 }" in written["batching.config"].read_text()
    assert "prometheus_config" in written["monitoring.config"].read_text()


def test_base_path_root_is_configurable(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    config = config_lib.build_model_server_config(zoo, base_path_root=str(zoo))
    assert config.model_config_list.config[0].base_path == str(zoo / "plain" / "saved_model")


def test_an_empty_zoo_gives_an_empty_config_that_is_refused(tmp_path):
    text = text_format.MessageToString(config_lib.build_model_server_config(tmp_path))
    assert text.startswith("model_config_list {")
    with pytest.raises(config_lib.ConfigError, match="configures no model"):
        config_lib.parse_model_server_config(text)
    with pytest.raises(config_lib.ConfigError, match="no SavedModel versions"):
        config_lib.write_serving_config(tmp_path, tmp_path / "serving")
    assert not (tmp_path / "serving").exists()


@pytest.mark.parametrize("root", ["", "models", "./models", "/"])
def test_base_path_root_must_be_absolute(tmp_path, root):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    with pytest.raises(config_lib.ConfigError, match="expected an absolute path"):
        config_lib.write_serving_config(zoo, tmp_path / "serving", base_path_root=root)


def test_files_it_did_not_write_are_never_overwritten(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# My project\n")
    with pytest.raises(config_lib.ConfigError, match="refusing to overwrite .*README.md"):
        config_lib.write_serving_config(zoo, project)
    assert (project / "README.md").read_text() == "# My project\n"
    assert sorted(p.name for p in project.iterdir()) == ["README.md"]  # Nothing written.


def test_its_own_files_are_rewritten_even_from_before_the_header(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    first = config_lib.write_serving_config(zoo, tmp_path / "serving")
    assert all(config_lib.GENERATED_BY in p.read_text().splitlines()[0] for p in first.values())
    for name in ("batching.config", "monitoring.config"):  # As written before the header.
        path = first[name]
        path.write_text(path.read_text().removeprefix(config_lib.PROTO_HEADER))
    readme = first["README.md"]
    readme.write_text(readme.read_text().removeprefix(config_lib.README_HEADER))
    fake_zoo(zoo, {"other": [1]})
    second = config_lib.write_serving_config(zoo, tmp_path / "serving")
    assert 'name: "other"' in second["models.config"].read_text()
    assert second["README.md"].read_text().startswith(config_lib.README_HEADER)


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: 'a' base_path: '/m/a' ", "not a valid ModelServerConfig"),
        ("model_config_list { config { nam: 'a' } }", "not a valid ModelServerConfig"),
        ("model_config_list { config { name: 'a' } }", "needs a name and a base_path"),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tensorflow' } "
                "config { name: 'a' base_path: '/b' model_platform: 'tensorflow' } }"
            ),
            "configured twice",
        ),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tensorflow' "
                "model_version_policy { specific { versions: 1 } } "
                "version_labels { key: 'canary' value: 2 } } }"
            ),
            "labels versions \\[2\\]",
        ),
        ("", "configures no model"),
        ("model_config_list { }", "configures no model"),
        ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'bogus' } }",
         "model_platform 'bogus'"),
        ("model_config_list { config { name: 'a' base_path: '/a' } }", "model_platform ''"),
        ("model_config_list { config { name: 'a' base_path: 'zoo/a' model_platform: 'tensorflow' } }",
         "relative base_path 'zoo/a'"),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tensorflow' "
                "model_type: TENSORFLOW } }"
            ),
            "sets both",
        ),
    ],
)
def test_malformed_configs_are_clear_errors(text, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.parse_model_server_config(text)


@pytest.mark.parametrize(
    "entry",
    ["base_path: '/m/a' model_type: TENSORFLOW", "base_path: 'gs://bucket/a' model_platform: 'tensorflow'"],
)
def test_deprecated_model_type_and_remote_base_paths_are_valid(entry):
    config = config_lib.parse_model_server_config(f"model_config_list {{ config {{ name: 'a' {entry} }} }}")
    assert config.model_config_list.config[0].name == "a"


def test_a_binary_config_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "models.config"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(config_lib.ConfigError, match="models.config: not a text file"):
        config_lib.load_model_server_config(path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="cannot read"):
        config_lib.load_model_server_config(tmp_path / "models.config")


@pytest.mark.parametrize("root", ["/x:ro,/etc", "/x,y", "/my models", "/x'y", '/x"y', "/$HOME"])
def test_base_paths_that_break_the_compose_volume_are_refused(tmp_path, root):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    with pytest.raises(config_lib.ConfigError, match="would break the docker-compose volume"):
        config_lib.write_serving_config(zoo, tmp_path / "serving", base_path_root=root)
    assert not (tmp_path / "serving").exists()


def test_a_zoo_path_that_breaks_the_compose_volume_is_refused(tmp_path):
    zoo = fake_zoo(tmp_path / "my:zoo", {"plain": [1]})
    with pytest.raises(config_lib.ConfigError, match="my:zoo.*would break the docker-compose volume"):
        config_lib.write_serving_config(zoo, tmp_path / "serving")


def test_a_version_beyond_int64_is_left_out_like_tf_serving_does(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1, 99999999999999999999]})
    (entry,) = config_lib.build_model_server_config(zoo).model_config_list.config
    assert dict(entry.version_labels) == {"stable": 1}
