#!/usr/bin/env python
"""Occlusion sensitivity and TP/FP/FN error maps: python visualize_occlusion.py --model_path best_model_FPN.pth"""
import sys

from xai.cli import main

if __name__ == "__main__":
    sys.exit(main("occlusion"))
