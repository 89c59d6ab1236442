// Package gcs is a storage.Backend on Google Cloud Storage, written on
// net/http against the JSON API (https://storage.googleapis.com/storage/v1
// and /upload/storage/v1), with golang.org/x/oauth2/google for
// credentials.
//
// Why not the official client (cloud.google.com/go/storage): redback
// prefers each store's own SDK, but this one links gRPC, the xDS/Envoy
// protobufs, OpenCensus and OpenTelemetry into every redback binary, and
// their package initialisers run in every command, whether it touches GCS
// or not. Measured on the full binary (issue #17 §2): 94 MB, 461 package
// inits and 32 MB of the executable's pages resident in an idle command,
// against 59 MB, 233 inits and 19 MB without it; the generated JSON client
// (google.golang.org/api/storage/v1) still pulls gRPC and OTel in through
// its options (64 MB, 307 inits). Redback needs a handful of the JSON
// API's requests (insert, resumable upload, get, list, delete);
// docs/architecture.md and docs/performance.md have the figures.
//
// Location URL:
//
//	gs://bucket[/prefix]
//
// Credentials never go in the URL. Requests carry an OAuth2 token from
// Application Default Credentials with the devstorage.read_write scope:
// the file GOOGLE_APPLICATION_CREDENTIALS names (a service account key,
// workload identity federation, an impersonation config), else gcloud's
// application-default login, else the metadata server of a Google Cloud
// machine (GCE, GKE workload identity, Cloud Run). Off Google Cloud with
// none of these, New asks the metadata server (169.254.169.254) whether
// it exists, which fails after a short wait with "could not find default
// credentials". When STORAGE_EMULATOR_HOST is set (host:port, or a base
// URL) requests go to that emulator without credentials and ADC is never
// consulted; the tests use fake-gcs-server that way.
//
// Put reads up to ChunkSize (8 MiB) of the object. When the object ends
// within it, it is sent in one multipart request whose metadata declares
// its CRC32C (the service refuses bytes that do not match). Otherwise it
// is a resumable upload in chunks of ChunkSize, one chunk in memory; the
// last request carries the whole object's CRC32C (X-Goog-Hash). The object
// becomes visible only when the upload is finalized, so Put is atomic; a
// reader that fails, a context that ends or a permanent error cancels the
// session. A chunk that fails transiently (408, 429, 5xx, a broken
// connection) is resumed from what the session reports it kept, up to 5
// attempts. The finalized object's CRC32C is compared with the bytes sent
// (fake-gcs-server does not check X-Goog-Hash); a mismatch deletes the
// object and is a transient error.
//
// PutIf uses generation preconditions: IfAbsent is ifGenerationMatch=0,
// IfMatch is ifGenerationMatch=<generation>; an object's ETag, for
// redback, is its generation number in decimal.
//
// Reads of a whole object are checked against the CRC32C the service
// stored (X-Goog-Hash); a mismatch is reported as a *storage.CorruptError
// (exit 3), like a sha256 mismatch redback finds itself. Ranged reads are
// not checked by the store (the manifests' sha256 covers them).
//
// Errors name the operation, the key, the HTTP status and the service's
// message; never a URL (an upload session's URL lets anyone write the
// object) or a header. A missing object wraps storage.ErrNotExist, a
// failed precondition storage.ErrPrecondition; 408, 429, 5xx and broken
// connections are storage.TransientError; 401/403 name the credentials.
package gcs
