"""Evaluate: python test.py -d 0 -se 30 [-ee 32] [-s] (inside this folder, or by path)."""
from config import config
from network_desp import Network
from lighthead.eval.cli import main

if __name__ == '__main__':
    main(config, Network)
