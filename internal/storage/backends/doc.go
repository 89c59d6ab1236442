// Package backends opens a storage.Backend from a location: a plain path,
// file:///abs/path, s3://bucket/prefix?..., gs://bucket/prefix,
// azblob://container/prefix?... or mem:// (tests). The scheme table is an
// explicit Registry value built by the caller (no init() registration);
// Default returns the standard one. Each scheme parses and validates its
// own URLs (Registry.Check, which configuration validation uses), and every
// backend it opens is wrapped in the retry decorator.
package backends
