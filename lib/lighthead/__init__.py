"""lighthead: Light-Head R-CNN (Xception* and ResNet-101) in TensorFlow."""
__version__ = "0.1.0"
