import subprocess
import sys

from tfjsigr.cli.testing import assert_one_line_error, run

RECIPE = """
dataset = "fashion_mnist"
[architecture]
name = "mlp"
[[penalties]]
type = "jacobian"
[tune]
"""


def test_a_bad_tune_table_is_a_one_line_error_naming_the_key(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE + '"penalties[0].weight" = { low = 1.0, high = 0.1, log = true }\n')
    result = run("tune", path, "--out", tmp_path / "run")
    assert_one_line_error(result, "key 'tune.\"penalties[0].weight\"': 'low' must be < 'high'")
    path.write_text(RECIPE + '"penalties[0].wait" = { low = 0.1, high = 1.0 }\n')
    assert_one_line_error(run("tune", path), "key 'tune.\"penalties[0].wait\"'")
    assert not (tmp_path / "run").exists()


def test_help_lists_the_options_and_imports_no_optuna():
    code = (
        "import sys\nfrom tfjsigr.cli import cli\n"
        "try:\n    cli(['tune', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    for option in ("--trials", "--quick", "--storage", "--study-name", "--robustness",
                   "--min-clean", "postgresql://"):  # fmt: skip
        assert option in result.stdout
