//go:build unix && !linux

package drill

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
