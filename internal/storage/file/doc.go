// Package file is a storage.Backend on a local (or mounted) directory.
//
// Object "a/b/c" is the file <root>/a/b/c. Put writes a temporary file
// named ".redback-tmp-*" in the target directory, fsyncs it, renames it
// over the final name and fsyncs the directory, so readers see the old or
// the new object, never a part, and a crash leaves at worst an unlisted
// temporary file. Names starting with ".redback-" are reserved: List skips
// them and keys may not use them.
//
// ETags are "<inode>-<size>-<mtime ns>" in hex: every Put creates a new
// file (new inode, new mtime), so a rewrite changes the ETag without
// reading the content.
//
// PutIf IfAbsent writes a temporary file and hard-links it to the final
// name (link fails if the name exists), so it is atomic even across hosts
// sharing a POSIX file system. PutIf IfMatch compares and renames while
// holding an exclusive flock on <root>/.redback-lock; that makes it a
// compare-and-swap among PutIf callers on one host (flock is not reliable
// on network file systems). Unconditional Put and Delete do not take the
// lock.
//
// A key cannot be both an object and a prefix of other objects ("a" and
// "a/b"): the file system needs "a" to be a directory for "a/b". Empty
// directories left by Delete are not removed.
package file
