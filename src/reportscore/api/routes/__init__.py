"""Thin HTTP routes: parse, call a service, shape the response."""
