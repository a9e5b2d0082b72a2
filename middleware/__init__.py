"""Bundled, optional middleware for kiqpy (import name: ``kiqpy_middleware``).

Each module depends only on kiqpy's public API and declares the worker options it understands.
"""
