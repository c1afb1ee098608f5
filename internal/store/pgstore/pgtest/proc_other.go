//go:build !unix

package pgtest

import "syscall"

// sysProcAttr: there is no root to step down from outside Unix, so acct
// is always nil here.
func sysProcAttr(*account) *syscall.SysProcAttr { return nil }
