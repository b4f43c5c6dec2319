"""A calculator module that prints on stdout, as some third-party packages do at import
and while computing: once through Python, once straight to file descriptor 1."""

import os

from genanalysis.potentials import load_potential

print("noisy_calculator: a banner printed at import")
os.write(1, b"noisy_calculator: a line written to fd 1 at import\n")


def make():
    from external_calculators import MACELayoutCalculator

    class Noisy(MACELayoutCalculator):
        def calculate(self, *args, **kwargs):
            print("noisy_calculator: computing")
            super().calculate(*args, **kwargs)

    return Noisy(load_potential("builtin:W"))
