"""RQ job entry points: thin — ids in, webapp services called, events out."""
