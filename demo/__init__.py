"""`make demo`: the whole system on this machine, fed by the Turn simulator."""
