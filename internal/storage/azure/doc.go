// Package azure is a storage.Backend on Azure Blob Storage (block blobs),
// using the official SDK (github.com/Azure/azure-sdk-for-go/sdk/storage/azblob).
//
// Location URL:
//
//	azblob://container[/prefix]?account=NAME&endpoint=URL
//
// Credentials never go in the URL. In order:
//   - AZURE_STORAGE_CONNECTION_STRING: a connection string (it names the
//     account and endpoint; Azurite's works too);
//   - AZURE_STORAGE_KEY with the account (account= or AZURE_STORAGE_ACCOUNT):
//     a shared key;
//   - otherwise the default Azure credential chain (environment service
//     principal, workload identity, managed identity, Azure CLI) for the
//     account.
//
// endpoint defaults to https://NAME.blob.core.windows.net/.
//
// Put reads the object in blocks of BlockSize (8 MiB, one buffered per
// Put), stages each with its MD5 (the service checks it; the SDK retries
// each request), then commits the block list with the whole object's MD5
// as its Content-MD5. Nothing is visible until the commit, so Put is
// atomic; uncommitted blocks of a failed Put are discarded by the service
// (after a week at most). An object of one block is one Put Blob.
//
// PutIf sends If-None-Match: * (IfAbsent) or If-Match: <ETag>.
//
// A read of a whole object is checked against the Content-MD5 the service
// stored; a mismatch is a *storage.CorruptError (exit 3). Ranged reads are
// not checked by the store (the manifests' sha256 covers them).
//
// Errors: BlobNotFound wraps storage.ErrNotExist; 412 ConditionNotMet and
// 409 BlobAlreadyExists (of a conditional write) wrap
// storage.ErrPrecondition; 408, 429, 5xx and broken connections are
// storage.TransientError; 401/403 name the credentials.
package azure
