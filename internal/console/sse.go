package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// writeTimeout bounds each event's write: a browser that stops reading
// ends its stream instead of holding the handler forever.
const writeTimeout = 10 * time.Second

// eventStream writes Server-Sent Events.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startStream answers the request with an event stream.
func startStream(w http.ResponseWriter) (*eventStream, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // reverse proxies: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	es := &eventStream{w: w, rc: http.NewResponseController(w)}
	return es, es.flush()
}

// send writes one event whose data is v in JSON.
func (es *eventStream) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = es.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := fmt.Fprintf(es.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	return es.flush()
}

// comment writes an SSE comment, which keeps idle proxies from closing
// the stream.
func (es *eventStream) comment() error {
	_ = es.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := fmt.Fprint(es.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return es.flush()
}

func (es *eventStream) flush() error {
	return es.rc.Flush()
}
