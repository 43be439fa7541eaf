"""Tools for tests, benchmarks and demos: throwaway real parts (PostgreSQL, a live service, ...).

Nothing in a production unit imports from here.
"""
