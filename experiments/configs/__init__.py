"""One file per named experiment, each with `get_config() -> Config` (see `flaxzoo.experiments.named`)."""
