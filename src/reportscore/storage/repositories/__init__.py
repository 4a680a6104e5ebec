"""All SQL lives in these functions; services call them with a session inside one transaction."""
