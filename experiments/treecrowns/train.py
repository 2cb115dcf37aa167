"""Train: python experiments/<name>/train.py [-d 0-7] [-c] [--weights PATH|none] [KEY=VALUE ...]"""
from config import config
from network_desp import Network
from lighthead.train.cli import main

if __name__ == '__main__':
    main(config, Network)
