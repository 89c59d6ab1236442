// Package repocopy copies a repository from one backend to another (any
// two: file, S3, GCS, Azure Blob), incrementally and so that the target
// is always a consistent repository.
//
// It knows the repository layout only through two rules that hold for
// every format version: commit records (manifests, markers) are JSON
// objects ("*.json"), and a manifest names each data object it commits
// with its key, stored size and sha256 (an "object" with "key", "sha256"
// and "stored_bytes", wherever it sits in the JSON; the key is relative to
// the manifest's source root, a directory above the manifest). So it
// copies:
//
//  1. top-level markers (redback.json) the target lacks;
//  2. every other object that is not JSON (data), the target lacking it
//     or holding another size, each streamed through a sha256 and size
//     check against the manifests that name it: a mismatch fails that
//     object's upload (nothing becomes visible) and is reported as damage;
//  3. manifests that commit data objects, once all their data is on the
//     target;
//  4. the other manifests (generations, which a reader follows to their
//     segments and base snapshots).
//
// Manifests are rewritten on the target when the source's differ in size
// or are newer (a generation that ended, a keep mark). Leases and pins
// (lease.json, pins/) belong to the processes using one repository and
// are never copied; the copy never deletes anything (run prune on the
// target with its own policy). A killed copy resumes where it stopped:
// every Put is atomic, data already on the target is skipped, and a
// manifest appears only after its data.
package repocopy
