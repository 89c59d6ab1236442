//go:build unix

package scratch

import "syscall"

// procAttr puts the server in its own process group so that killGroup
// reaches anything it forks (BGSAVE children); on Linux the server is also
// killed if its parent dies.
func procAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(a)
	return a
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) {
	if pid <= 0 {
		return
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
