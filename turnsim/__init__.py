"""A Turn.io simulator: the Data Export API and a webhook sender, faults included."""
