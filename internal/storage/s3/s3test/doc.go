// Package s3test starts a real S3 server (versitygw, posix backend) on
// loopback for tests:
//
//	url := s3test.Start(t) // s3://<bucket>?endpoint=http://127.0.0.1:PORT&...
//
// The versitygw binary is looked up in PATH and then in $(go env
// GOPATH)/bin. When it is missing the test is skipped, or fails when
// REDBACK_TEST_REQUIRE_S3=1 (CI sets it). Install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
package s3test
