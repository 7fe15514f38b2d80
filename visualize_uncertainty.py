#!/usr/bin/env python
"""MC-dropout uncertainty and TP/FP/FN error maps: python visualize_uncertainty.py --model_path best_model_FPN.pth"""
import sys

from xai.cli import main

if __name__ == "__main__":
    sys.exit(main("uncertainty"))
