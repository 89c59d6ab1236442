// Package s3 is a storage.Backend on Amazon S3 or an S3-compatible server
// (MinIO, versitygw, Ceph RGW, ...), using the AWS SDK for Go v2.
//
// Location URL:
//
//	s3://bucket[/prefix]?endpoint=URL&use_path_style=true&region=R&sse=aws:kms&sse_kms_key_id=ID
//
// Credentials never go in the URL: the SDK's standard chain supplies them
// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared
// config files, web identity, IMDS). Region comes from the URL, then the
// chain (AWS_REGION), then defaults to us-east-1.
//
// Put streams through a multipart upload (8 MiB parts, 2 in flight, so a
// Put holds about 24 MiB). S3 allows 10,000 parts, so an object of unknown
// size can reach 78 GiB with the default part size; raise Config.PartSize
// for larger data sets. S3 makes an object visible only when the upload
// completes, so Put is atomic, and a failed Put aborts its upload. PutIf
// sends If-None-Match: * or If-Match: <etag>. A conditional write whose
// response was lost and that the SDK retried reports ErrPrecondition even
// though the first attempt won; callers of PutIf (leases) should re-read
// the object when that matters.
//
// A read of a whole object is checked by the SDK against the checksum S3
// stored with it (when there is one); a mismatch is a *storage.CorruptError
// (exit 3).
//
// Errors: 404 NoSuchKey (NotFound for HEAD) wraps storage.ErrNotExist. Some
// servers answer a HEAD with an unknown access key with a bare 404
// (versitygw does), which Stat then reports as ErrNotExist; every other
// request names the credentials problem. 412 wraps
// storage.ErrPrecondition; throttling, 5xx, 409 conditional-write
// conflicts, timeouts and connection failures are storage.TransientError;
// everything else (403, 400, a missing bucket) is permanent. The SDK
// retries each HTTP request (3 attempts unless Config.RetryMaxAttempts
// says otherwise), which keeps one failed part from failing a whole
// upload; the retry decorator retries whole operations on top of that.
//
// SSE: sse and sse_kms_key_id are sent on PutObject and
// CreateMultipartUpload. versitygw (the test server) accepts the headers
// but neither encrypts nor reports encryption.
package s3
