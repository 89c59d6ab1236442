// Package config is the agent's YAML configuration: the schema, Default(),
// Load (strict decoding, ${ENV} expansion, defaults) and Validate, which
// reports every problem by field path (sources[0].snapshot.every: ...).
// It is pure data: loading has no side effects (no files opened, no
// connections, nothing logged).
package config
