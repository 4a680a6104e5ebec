"""Shadow challengers: registered versions scored beside the champion off the answer's path, and the comparison
that says which of two versions ranks live reports better."""
