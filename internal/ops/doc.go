// Package ops is redback's operations layer: what a verb does, between the
// faces that call it (the CLI in internal/cli, the HTTP API and page of the
// agent and of `redback ui`) and the packages that do the work (catalog,
// pitr, restore, drill). Both faces call the same functions and print the
// same JSON types, so `redback list --json` and GET /api/v1/timeline agree
// field by field.
package ops
