"""The README stays true: its parameter list is what `dazzle params` prints, and the commands
it shows exist."""

from pathlib import Path

from dazzle.cli import build_parser
from dazzle.params import format_help

README = Path(__file__).resolve().parent.parent / "README.md"


def test_parameter_list_matches_dazzle_params():
    text = README.read_text()
    begin = text.index("<!-- dazzle params: begin -->")
    end = text.index("<!-- dazzle params: end -->")
    block = text[begin:end].split("```")[1].strip("\n")
    assert block == format_help().rstrip("\n")


def test_cli_commands_in_readme_exist():
    text = README.read_text()
    sub = build_parser()._subparsers._group_actions[0].choices
    for cmd in ("run", "params", "simulate", "demo", "report"):
        assert f"dazzle {cmd}" in text
        assert cmd in sub
