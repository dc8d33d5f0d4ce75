"""accelgen: Verilog generators for the blocks of an ML inference accelerator.

The package holds the Amaranth components (one block per module), the configuration (:mod:`gen.config`),
the emitter (:mod:`gen.emit`) and the command line (:mod:`gen.cli`).
"""

__version__ = "0.1.0"
