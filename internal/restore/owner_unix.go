//go:build unix

package restore

import (
	"fmt"
	"os"
	"syscall"
)

// matchOwner gives the new file f the owner and mode of the file it
// replaces, or else mode 0640 and (when running as root) the owner of dir,
// so that a redis-server running as its own user can read what root wrote.
func matchOwner(f *os.File, path, dir string) error {
	mode := os.FileMode(0o640)
	ref, err := os.Stat(path)
	if err == nil {
		mode = ref.Mode().Perm()
	} else if ref, err = os.Stat(dir); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	if st, ok := ref.Sys().(*syscall.Stat_t); ok && os.Getuid() == 0 {
		if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", f.Name(), err)
		}
	}
	return nil
}
