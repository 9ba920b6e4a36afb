"""analysis: ArviZ and seaborn tools to study learned preference heterogeneity."""

__version__ = "0.1.0"
