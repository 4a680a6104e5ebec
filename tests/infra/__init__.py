"""Test infrastructure: throwaway servers and per-run isolation on the shared PostgreSQL, Redis and RabbitMQ."""
