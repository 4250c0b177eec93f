"""Proof under fire: the whole system, a seeded workload, faults, and a lost/duplicated ledger.

    python -m chaos [--seed N] [--duration S] [--short]      (make chaos)

system.py   private PostgreSQL + RabbitMQ, the simulator, every service as a supervised process
workload.py webhooks at a steady pace with duplicates; messages arriving, contacts edited
faults.py   the fault schedule drawn from the seed, and its injector
ledger.py   what was owed (the rules) against what landed: lost, duplicated, unexpected, dead
run.py      one run, start to ledger
"""
