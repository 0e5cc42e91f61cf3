"""Durable background jobs: rows in the metadata DB are the truth; runners claim and execute them."""
