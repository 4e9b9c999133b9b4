"""The help of ``dnmf`` and of every subcommand is complete, and the README documents batch jobs."""

from __future__ import annotations

import pytest
from cli_helpers import REPO, run_dnmf

from dnmf.cli.main import build_parser
from dnmf.cli.options import CLUSTER_OPTIONS, FIT_OPTIONS, OUTPUT_OPTIONS

SUBCOMMANDS = ("ingest", "fit", "transform", "inspect", "cluster", "demo")


def help_of(*words: str) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*words, "--help"])
    assert exited.value.code == 0
    return ""


def test_top_level_help_lists_every_subcommand_and_exit_status():
    done = run_dnmf("--help", timeout=60)
    assert done.returncode == 0
    for command in SUBCOMMANDS:
        assert f"\n    {command}" in done.stdout, command
    for status in ("0  success", "2  usage error", "3  resumable failure", "4  not converged"):
        assert status in done.stdout


#: What `dnmf fit --help` must offer, written out here rather than read from the option table it tests.
FIT_FLAGS = ["INPUT", "--config", "--rank", "--out", "--solver", "--beta-loss", "--init", "--max-iter", "--tol",
             "--alpha-w", "--alpha-h", "--l1-ratio", "--seed", "--chunks", "--checkpoint", "--checkpoint-every",
             "--no-checkpoint", "--force", "--require-convergence", "--cluster", "--scheduler", "--connect-timeout",
             "--log-format", "--log-level", "--summary", "exit status", "{bpp,cd,hals,mu}", "kullback-leibler"]


def test_every_documented_flag_is_in_the_table():
    table = {o.flag for o in FIT_OPTIONS[1:] + CLUSTER_OPTIONS + OUTPUT_OPTIONS}
    assert {flag for flag in FIT_FLAGS if flag.startswith("--") and flag != "--config"} == table


@pytest.mark.parametrize(("words", "expected"), [
    (("fit",), FIT_FLAGS),
    (("transform",), ["RESULT", "INPUT", "--out", "--overwrite", "--scheduler", "--cluster", "--log-format",
                      "--summary", "exit status"]),
    (("inspect",), ["PATH", "--top", "--json"]),
    (("ingest",), ["--format", "--chunks", "--row-col-value", "--overwrite"]),
    (("cluster", "show"), ["CONFIG.yaml"]),
    (("cluster", "make-certs"), ["FOLDER", "--host"]),
    (("demo",), ["--rows", "--max-iter", "--workers"]),
])
def test_subcommand_help_is_complete(words, expected, capsys):
    help_of(*words)
    text = capsys.readouterr().out
    for item in expected:
        assert item in text, item


def test_readme_shows_a_batch_example_and_the_exit_codes():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Batch jobs"):]
    for text in ("dnmf ingest", "dnmf fit", "dnmf inspect", "dnmf transform", "--cluster", '"status"', "| 3 |",
                 "| 4 |"):
        assert text in section, text
