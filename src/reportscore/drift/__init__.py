"""Drift of served reports and scores against the model version's stored reference distribution (PSI per window).

``bins`` turns a reference into bins and a scored batch into bin counts; ``psi`` is the index; ``service`` keeps the
counts (one UPSERT per scored batch, in the results' transaction) and reads them back per window."""
