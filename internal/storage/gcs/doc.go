// Package gcs is a storage.Backend on Google Cloud Storage, using the
// official client (cloud.google.com/go/storage) over its JSON API.
//
// Location URL:
//
//	gs://bucket[/prefix]
//
// Credentials never go in the URL: the client uses Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials,
// workload identity, the metadata server). When STORAGE_EMULATOR_HOST is
// set the client talks to that emulator without authentication, exactly
// as the SDK documents; the tests use fake-gcs-server that way.
//
// Put streams through a resumable upload in chunks of ChunkSize (8 MiB,
// one chunk buffered per Put); the client retries each chunk, and the
// object becomes visible only when the upload is finalized, so Put is
// atomic. A reader that fails, or a context that ends, cancels the upload.
// The client sends a CRC32C of the whole object, which the service checks
// before it finalizes.
//
// PutIf uses generation preconditions: IfAbsent is ifGenerationMatch=0,
// IfMatch is ifGenerationMatch=<generation>; an object's ETag, for
// redback, is its generation number in decimal.
//
// Reads of a whole object are checked by the client against the CRC32C
// the service stored; a mismatch is reported as a *storage.CorruptError
// (exit 3), like a sha256 mismatch redback finds itself. Ranged reads are
// not checked by the store (the manifests' sha256 covers them).
//
// Errors: a missing object wraps storage.ErrNotExist, a failed
// precondition storage.ErrPrecondition; 429, 5xx, timeouts and broken
// connections are storage.TransientError; 401/403 name the credentials.
package gcs
