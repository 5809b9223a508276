"""sk_deepmetric: deep metric learning with a scikit-learn face."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
