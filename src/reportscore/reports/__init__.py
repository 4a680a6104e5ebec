"""Former home of the job submission code, now :mod:`reportscore.jobs`; ``reports.service`` re-exports it for
callers outside the package that still import it from here."""
