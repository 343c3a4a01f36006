"""`python -m flaxzoo.experiments.cli`: the `flaxzoo` command."""

from flaxzoo.experiments.cli.entry import entry_point

entry_point()
