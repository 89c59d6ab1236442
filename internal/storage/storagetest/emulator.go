package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary returns the path of the emulator binary name, looked up in PATH,
// then in $(go env GOPATH)/bin and in extraDirs. When it is missing the
// test is skipped, or fails when the environment variable require is "1"
// (CI sets it); hint says how to install it.
func Binary(t testing.TB, name, require, hint string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	var dirs []string
	for _, dir := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(dir, "bin"))
	}
	for _, dir := range append(dirs, extraDirs...) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found in PATH or GOPATH/bin (%s)", name, hint)
	if os.Getenv(require) == "1" {
		t.Fatal(msg + "; " + require + "=1 requires it")
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a loopback address with a port nothing listens on
// (at the time of the call).
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Emulator describes a storage server process a test starts.
type Emulator struct {
	Name string // for messages
	Bin  string
	// Args returns the command line for a server on the loopback address
	// addr ("127.0.0.1:PORT").
	Args func(addr string) []string
	Env  []string // added to the test's environment
	// Path is requested (GET http://addr/Path) until the server answers.
	Path string
}

// StartEmulator starts e on a free loopback port (retrying a few times on
// a port race), waits until it answers HTTP, stops it when the test ends
// (interrupt, then kill after 10 s) and returns its address. Its output
// goes to a log file in the test's temp dir, shown when it does not start.
func StartEmulator(t testing.TB, e Emulator) string {
	t.Helper()
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		addr := FreePort(t)
		logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", e.Name, attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(e.Bin, e.Args(addr)...)
		cmd.Env = append(os.Environ(), e.Env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			_ = logf.Close()
			t.Fatalf("start %s: %v", e.Name, err)
		}
		_ = logf.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Node (Azurite) can take a minute to start on a loaded machine.
		err = waitReady("http://"+addr+"/"+strings.TrimPrefix(e.Path, "/"), exited, 2*time.Minute)
		if err == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 2 {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s did not start: %v\n%s", e.Name, err, log)
		}
	}
}

// waitReady polls url until it answers HTTP, the process exits or the
// timeout passes.
func waitReady(url string, exited <-chan error, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-deadline.C:
			return errors.New("timed out waiting for it to answer")
		case <-tick.C:
		}
	}
}

// DamageAtRest flips one byte of the first occurrence of marker in every
// regular file under dir (an emulator's data directory) and returns how
// many files it changed: damage at rest, behind the server's back.
func DamageAtRest(t testing.TB, dir string, marker []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		p, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if i := bytes.Index(p, marker); i >= 0 {
			p[i] ^= 0xff
			n++
			return os.WriteFile(path, p, 0o600)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
