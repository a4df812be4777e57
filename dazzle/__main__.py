from dazzle.cli import command

raise SystemExit(command())
