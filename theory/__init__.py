"""theory: the generalisation estimate and its predicted rates, symbolically (sympy).

Never imports ``genanalysis``: it is the independent half of every empirical check.
"""
