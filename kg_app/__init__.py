"""The knowledge graph: a projection of the SQL domain into Neo4j or FalkorDB."""
