"""Verifiers: sandboxed code execution and answer checkers."""
