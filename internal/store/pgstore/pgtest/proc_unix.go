//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs a PostgreSQL program as acct (nil: as this process's
// user).
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	if acct == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: acct.uid, Gid: acct.gid}}
}
