"""This experiment's network: Light-Head R-CNN bound to ./config.py (original Network contract)."""
from config import config
from lighthead.network import LightHeadNetwork


class Network(LightHeadNetwork):
    def __init__(self):
        super(Network, self).__init__(config)
