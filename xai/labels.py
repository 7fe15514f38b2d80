"""Mask ids with a meaning of their own (torch-free: the metrics and figure workers import it)."""

IGNORE = 255  # the ground-truth id of pixels that belong to no class: padding, and the mask's ignore label
