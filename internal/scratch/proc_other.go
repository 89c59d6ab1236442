//go:build unix && !linux

package scratch

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
