//go:build !linux

package integration

import "syscall"

// zkSysProcAttr: outside Linux there is no parent-death signal; the
// cleanups kill the servers.
func zkSysProcAttr() *syscall.SysProcAttr { return nil }
