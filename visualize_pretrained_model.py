#!/usr/bin/env python
"""Grad-CAM heatmaps and TP/FP/FN error maps: python visualize_pretrained_model.py --model_path best_model_FPN.pth"""
import sys

from xai.cli import main

if __name__ == "__main__":
    sys.exit(main("gradcam"))
