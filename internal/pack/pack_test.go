package pack

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"filippo.io/age"

	"redback/internal/storage"
)

func seal(t *testing.T, raw []byte, rs *Recipients) ([]byte, *Writer) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, Options{Recipients: rs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w
}

func TestWriter_RoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 3<<20)
	_, _ = rand.Read(raw[:1<<20]) // part random, part compressible
	for _, tc := range []struct {
		name string
		rs   *Recipients
		ids  []age.Identity
	}{{"plain", nil, nil}, {"age", rs, []age.Identity{id}}} {
		t.Run(tc.name, func(t *testing.T) {
			stored, w := seal(t, raw, tc.rs)
			if w.Raw != int64(len(raw)) || w.Stored.N != int64(len(stored)) {
				t.Fatalf("sizes raw %d stored %d, want %d %d", w.Raw, w.Stored.N, len(raw), len(stored))
			}
			r, err := NewReader(bytes.NewReader(stored), Expect{Key: "k", Size: w.Stored.N, SHA256: w.Stored.Sum(), Encrypted: tc.rs != nil}, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatal("round trip differs")
			}
		})
	}
	if len(rs.Fingerprints) != 1 || rs.Fingerprints[0] == id.Recipient().String() {
		t.Fatalf("fingerprints %v must not be the key", rs.Fingerprints)
	}
}

func TestNewReader_Integrity(t *testing.T) {
	raw := bytes.Repeat([]byte("redback "), 100000)
	stored, w := seal(t, raw, nil)
	flip := append([]byte(nil), stored...)
	flip[len(flip)/2] ^= 0x40
	for _, tc := range []struct {
		name string
		data []byte
		size int64
	}{
		{"bit flip", flip, w.Stored.N},
		{"truncated", stored[:len(stored)-10], w.Stored.N},
		{"longer", append(append([]byte(nil), stored...), 0), w.Stored.N},
		// unknown size: read ahead on its own goroutine, sha256 still checked
		{"bit flip, read ahead", flip, -1},
		{"truncated, read ahead", stored[:len(stored)-10], -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.data), Expect{Key: "obj", Size: tc.size, SHA256: w.Stored.Sum()}, nil)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			var ie *IntegrityError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIntegrity) {
				t.Fatalf("got %v, want an IntegrityError", err)
			}
		})
	}
}

func TestNewReader_ReadAhead(t *testing.T) {
	raw := make([]byte, 3*readAheadMin+12345)
	for i := range raw {
		raw[i] = byte(i * 7 >> 3)
	}
	stored, w := seal(t, raw, nil)
	for _, size := range []int64{w.Stored.N, -1} {
		r, err := NewReader(bytes.NewReader(stored), Expect{Key: "obj", Size: size, SHA256: w.Stored.Sum()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("size %d: %v, %d of %d bytes", size, err, len(got), len(raw))
		}
	}
	// Close before the end stops the read-ahead goroutine.
	r, _ := NewReader(bytes.NewReader(stored), Expect{Key: "obj", Size: -1}, nil)
	r.Read(make([]byte, 10))
	r.Close()
}

func TestNewReader_WrongIdentity(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	rs, _ := ParseRecipients([]string{id.Recipient().String()})
	stored, w := seal(t, []byte("secret data"), rs)
	_, err := NewReader(bytes.NewReader(stored), Expect{Key: "obj", Size: w.Stored.N, SHA256: w.Stored.Sum(), Encrypted: true}, []age.Identity{other})
	if err == nil {
		t.Fatal("wrong identity accepted")
	}
	if _, err := NewReader(bytes.NewReader(stored), Expect{Key: "obj", Encrypted: true}, nil); err == nil {
		t.Fatal("no identity accepted")
	}
}

func TestLoadIdentities_NoSecretInError(t *testing.T) {
	env := map[string]string{"REDBACK_IDENTITY": "AGE-SECRET-KEY-NOTREALLYAKEY"}
	_, err := LoadIdentities("", func(k string) string { return env[k] })
	if err == nil || bytes.Contains([]byte(err.Error()), []byte("NOTREALLY")) {
		t.Fatalf("err %v", err)
	}
}

// failAfter serves data, then fails with err instead of the rest.
type failAfter struct {
	data []byte
	n    int
	err  error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n >= len(f.data)/2 {
		return 0, f.err
	}
	n := copy(p, f.data[f.n:len(f.data)/2])
	f.n += n
	return n, nil
}

// Classify: damage of the stored bytes is an *IntegrityError (exit 3)
// wherever it is found; a failure to read them is not.
func TestClassify(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	rs, _ := ParseRecipients([]string{id.Recipient().String()})
	raw := make([]byte, 6<<20)
	for i := range raw {
		raw[i] = byte(i * 7 >> 3)
	}
	_, _ = rand.Read(raw[:1<<20])
	for _, enc := range []bool{false, true} {
		var r *Recipients
		var ids []age.Identity
		if enc {
			r, ids = rs, []age.Identity{id}
		}
		stored, _ := seal(t, raw, r)
		// unknown sha and size: only decoding can find the damage
		exp := Expect{Key: "obj", Size: -1, Encrypted: enc}
		read := func(src io.Reader) error {
			rd, err := NewReader(src, exp, ids)
			if err != nil {
				return err
			}
			defer rd.Close()
			_, err = io.Copy(io.Discard, rd)
			return err
		}
		flip := append([]byte(nil), stored...)
		flip[len(flip)/3] ^= 0x10
		cases := map[string]io.Reader{
			"bit flip":       bytes.NewReader(flip),
			"store checksum": &failAfter{data: stored, err: &storage.CorruptError{Key: "obj", What: "checksum did not match: algorithm CRC32"}},
		}
		if enc {
			hdr := append([]byte(nil), stored...)
			hdr[bytes.Index(hdr, []byte("\n--- "))+8] ^= 0x01 // the age header's MAC
			cases["header MAC"] = bytes.NewReader(hdr)
		}
		for name, src := range cases {
			err := read(src)
			var ie *IntegrityError
			if !errors.As(err, &ie) || ie.Key != "obj" {
				t.Errorf("encrypted %v, %s: %v, want an IntegrityError naming obj", enc, name, err)
			}
		}
		cut := errors.New("connection reset by peer")
		err := read(&failAfter{data: stored, err: cut})
		var ie *IntegrityError
		if errors.As(err, &ie) || !errors.Is(err, cut) {
			t.Errorf("encrypted %v, cut connection: %v, want the read error, not damage", enc, err)
		}
	}
}
