"""The archetype command line."""
