"""Pretrained Orbax checkpoints shipped as package data, one folder each."""
