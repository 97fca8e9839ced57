package integration

import "syscall"

// zkSysProcAttr makes the kernel kill a ZooKeeper server when the test
// process dies without running its cleanups.
func zkSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
