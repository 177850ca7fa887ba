"""The run machinery: recipes, the runner, fingerprints, artifacts, the ledger, launching."""
