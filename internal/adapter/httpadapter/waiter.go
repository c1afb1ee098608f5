package httpadapter

import (
	"net/http"

	"github.com/ferry-iot/ferry/internal/command"
	"github.com/ferry-iot/ferry/internal/hono"
)

// writeCommand answers the request with the command (Hono: 200 with
// hono-command, hono-cmd-req-id for request/response commands,
// hono-cmd-target-device when it went to a gateway for one of its
// devices). The command counts as accepted once written.
func writeCommand(rw http.ResponseWriter, p command.Pending) {
	cmd := p.Cmd
	h := rw.Header()
	h.Set("hono-command", cmd.Name)
	if !cmd.OneWay() {
		id, err := hono.EncodeReqID(cmd.CorrelationID, cmd.ReplyID, cmd.Device, cmd.Messaging)
		if err != nil {
			p.Done(command.Rejected)
			rw.WriteHeader(http.StatusAccepted)
			return
		}
		h.Set("hono-cmd-req-id", id)
	}
	if cmd.Via != "" {
		h.Set("hono-cmd-target-device", cmd.Device)
	}
	if cmd.ContentType != "" {
		h.Set("Content-Type", cmd.ContentType)
	}
	rw.WriteHeader(http.StatusOK)
	if _, err := rw.Write(cmd.Payload); err != nil {
		p.Done(command.Released)
		return
	}
	p.Done(command.Accepted)
}
