//go:build !linux

package mqtt

import (
	"errors"
	"log/slog"
	"net"
)

// poller is missing on this platform: connections never park.
type poller struct{}

var errPollerClosed = errors.New("mqtt: poller closed")

func newPoller(*slog.Logger, func() error) (*poller, error) {
	return nil, errors.New("no poller on this platform")
}

func parkable(net.Conn) bool { return false }

func (*poller) arm(*Conn) error { return errPollerClosed }
func (*poller) forget(*Conn)    {}
func (*poller) close()          {}
