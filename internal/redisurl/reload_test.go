package redisurl

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/redistest"
)

// tlsServer accepts TLS connections on loopback with the certificate in
// cert/key, asks for a client certificate, and sends each client the
// common name of the certificate it presented ("none" without one).
func tlsServer(t *testing.T, cert, key string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				name := "none"
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					name = pc[0].Subject.CommonName
				}
				io.WriteString(tc, name+"\n")
			}(c)
		}
	}()
	return ln.Addr().String()
}

func dialName(t *testing.T, u *URL) (string, error) {
	t.Helper()
	c, err := u.Dial(t.Context())
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return string(b[:len(b)-1]), nil
}

// TestTLS_ReloadOnFileChange: with Reload, a replaced client certificate
// and a replaced CA file are used by the next connection, without parsing
// the URL again; a server certificate from a CA no longer trusted is
// refused; a half-done rotation (a certificate without its key) keeps the
// previous pair.
func TestTLS_ReloadOnFileChange(t *testing.T) {
	dir := t.TempDir()
	ca1 := redistest.NewCA(t, dir, "one")
	ca2 := redistest.NewCA(t, dir, "two")
	srvCert, srvKey := ca1.Issue(t, t.TempDir(), "server")
	addr := tlsServer(t, srvCert, srvKey)

	caFile := filepath.Join(dir, "ca.pem")
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	install := func(ca *redistest.CA, cn string) { ca.IssueTo(t, certFile, keyFile, cn) }
	copyCA := func(ca *redistest.CA) {
		b, err := os.ReadFile(ca.File)
		if err != nil {
			t.Fatal(err)
		}
		redistest.WriteFileAtomic(t, caFile, b)
	}
	copyCA(ca1)
	install(ca1, "client-a")
	u, err := Parse("rediss://"+addr, Options{TLS: TLSOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, Reload: true}})
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := Parse("rediss://"+addr, Options{TLS: TLSOptions{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dialName(t, u); err != nil || got != "client-a" {
		t.Fatalf("first connection: %q, %v", got, err)
	}
	install(ca1, "client-b")
	if got, err := dialName(t, u); err != nil || got != "client-b" {
		t.Fatalf("after the rotation: %q, %v", got, err)
	}
	if got, _ := dialName(t, fixed); got != "client-a" {
		t.Fatalf("without Reload: %q, want the certificate read at parse time", got)
	}
	// Through Node (a Sentinel-named node) the reload holds too.
	install(ca1, "client-c")
	if got, err := dialName(t, u.Node(addr)); err != nil || got != "client-c" {
		t.Fatalf("Node after the rotation: %q, %v", got, err)
	}
	// A certificate replaced without its key yet: the previous pair.
	c, _ := ca1.Issue(t, t.TempDir(), "client-d")
	b, _ := os.ReadFile(c)
	redistest.WriteFileAtomic(t, certFile, b)
	if got, err := dialName(t, u); err != nil || got != "client-c" {
		t.Fatalf("half-done rotation: %q, %v", got, err)
	}
	// The CA replaced by one that did not sign the server: refused.
	copyCA(ca2)
	if got, err := dialName(t, u); err == nil {
		t.Fatalf("a server certificate of an untrusted CA was accepted (%q)", got)
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("refused for another reason: %v", err)
	}
	// Both CAs trusted again.
	b1, _ := os.ReadFile(ca1.File)
	b2, _ := os.ReadFile(ca2.File)
	redistest.WriteFileAtomic(t, caFile, append(b1, b2...))
	install(ca2, "client-e")
	if got, err := dialName(t, u); err != nil || got != "client-e" {
		t.Fatalf("after the CA rotation: %q, %v", got, err)
	}
	// The name is checked: a certificate for 127.0.0.1 is not one for localhost.
	byName, err := Parse("rediss://localhost:"+addr[len("127.0.0.1:"):], Options{TLS: TLSOptions{CAFile: caFile, Reload: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialName(t, byName); err == nil {
		t.Fatal("a certificate for 127.0.0.1 was accepted for localhost")
	}
}
