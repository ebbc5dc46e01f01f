"""Portfolio: the ledger (fills -> positions, cash, PnL) and, later, the rebalancer."""
