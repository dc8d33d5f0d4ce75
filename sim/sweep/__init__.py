"""Design-space sweeps (``accelgen sweep``): many configurations, measured as independent tasks on
Dask.

- :mod:`.spec` reads and checks the sweep file (base configuration, grid or points, metrics);
- :mod:`.point` runs one point in a process of its own, with a timeout;
- :mod:`.metrics` measures a point: emission, synthesis, RTL cycles, golden-model accuracy;
- :mod:`.execute` runs the points on a local or an existing Dask cluster, with a cache;
- :mod:`.results` writes the CSV, JSON and Pareto plots.
"""
