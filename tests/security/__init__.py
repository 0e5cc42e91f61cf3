"""Security and robustness tests of issue #17: each tries a family of hostile inputs against the real server."""
