// Package catalog knows the layout of a redback repository on any storage
// backend: where snapshots, their manifests, generations and log segments
// live, how they are named (fixed-width, sortable), and the JSON manifests
// that commit them. A manifest is written last, after the data object it
// describes, so an object without a manifest is invisible to readers.
// The format is documented in docs/format.md.
package catalog
