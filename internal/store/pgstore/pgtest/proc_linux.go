//go:build linux

package pgtest

import "syscall"

// sysProcAttr runs a PostgreSQL program as acct (nil: as this process's
// user). Pdeathsig makes the kernel shut the server down (SIGQUIT is
// PostgreSQL's immediate shutdown) if the test binary dies without
// running its cleanups, on a test timeout for example.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if acct != nil {
		a.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return a
}
