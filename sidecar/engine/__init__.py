"""The engine layer: everything that differs between OpenSearch and Elasticsearch (DESIGN.md §8)."""
