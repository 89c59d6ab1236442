package catalog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// process identifies a process beyond its pid (see LeaseRecord).
type process struct {
	host   string
	pid    int
	bootID string // "" where unknown
	start  uint64 // start time in clock ticks since boot; 0 where unknown
}

func thisProcess() process {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return process{host: host, pid: pid, bootID: bootID(), start: procStart(pid)}
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procStart is field 22 (starttime) of /proc/<pid>/stat; 0 when unknown.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// holderProcess parses "host/pid/random" (NewHolderID).
func holderProcess(holder string) (host string, pid int, ok bool) {
	parts := strings.Split(holder, "/")
	if len(parts) != 3 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return parts[0], pid, true
}

// goneFromThisHost says why the holder of rec, a process on this host,
// no longer exists ("" when it may still run, or runs elsewhere): the
// host was rebooted since (another boot id), no process has its pid, or
// or the process with its pid started at another time (the pid was
// reused: a restart in a container, where the agent is always pid 1).
func goneFromThisHost(rec *LeaseRecord, me process) string {
	host, pid, ok := holderProcess(rec.Holder)
	if !ok || me.host == "" || host != me.host {
		return ""
	}
	switch {
	case rec.BootID != "" && me.bootID != "" && rec.BootID != me.bootID:
		return "this host rebooted since it was taken"
	case pid == me.pid && rec.ProcStart != 0 && me.start != 0 && rec.ProcStart != me.start:
		return fmt.Sprintf("pid %d is this process now", pid)
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return fmt.Sprintf("no process %d on this host", pid)
	}
	if rec.ProcStart != 0 {
		if st := procStart(pid); st != 0 && st != rec.ProcStart {
			return fmt.Sprintf("pid %d is another process now", pid)
		}
	}
	return ""
}
