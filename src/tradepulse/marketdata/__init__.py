"""Market data: the simulator, file loaders and bar aggregation."""
