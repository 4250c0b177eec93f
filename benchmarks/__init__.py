"""`make bench`: each module measures one component beside its own baseline, in one run."""
