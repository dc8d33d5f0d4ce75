"""Simulation side of accelgen: golden models, cocotb benches, the runner and benchmarks."""
