"""cocotb testbenches, one per block, sharing the stream helpers of :mod:`sim.tb.streams`."""
