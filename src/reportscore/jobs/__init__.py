"""Jobs: submit a batch of reports, score it, read its task and wait for it to finish.

``views`` holds the one view of a task and its one encoder; ``submission`` stores batches; ``cache`` is what this
process knows about tasks; ``service`` is the one service that the HTTP routes, the fast path, the runners and the
CLI adapt.
"""
