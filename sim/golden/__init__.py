"""Bit-exact golden models of every block, numpy only (they never import Amaranth)."""
