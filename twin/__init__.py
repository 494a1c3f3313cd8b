"""bms-twin: the hardware twin of the seed cell (parameters, protocols, C-core wrapper)."""
