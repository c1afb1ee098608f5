package hono

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A request id (the <req-id> of command topics) is stateless, as in Hono:
// <1 flag digit><2 hex digits: length of the correlation id><correlation
// id><reply id without a leading "<device>/">. Flag bit 0 says the reply
// id began with "<device>/"; bits 1-2 are the messaging type (0 AMQP, 1
// Kafka). Whoever receives the response can rebuild the correlation id
// and the reply address from the topic alone.

// Messaging types in a request id's flag.
const (
	MessagingAMQP  = 0
	MessagingKafka = 1
)

// ErrReqID is a request id that was not made by EncodeReqID.
var ErrReqID = errors.New("malformed command request id")

// EncodeReqID makes the request id of a command with correlationID whose
// response goes to command_response/<tenant>/<replyID>. The id has to
// travel as one segment of an MQTT topic name and come back in the
// response topic, so it fails for an empty replyID (a one-way command has
// no request id), a correlation id longer than 255 bytes, and an id that
// would hold '/', '+', '#', NUL or invalid UTF-8.
func EncodeReqID(correlationID, replyID, device string, messaging int) (string, error) {
	if len(correlationID) > 255 {
		return "", fmt.Errorf("correlation id of %d bytes: at most 255 fit in a request id", len(correlationID))
	}
	if replyID == "" {
		return "", errors.New("a request id needs a reply id")
	}
	flag := (messaging & 3) << 1
	if rest, ok := strings.CutPrefix(replyID, device+"/"); ok {
		flag |= 1
		replyID = rest
	}
	id := fmt.Sprintf("%d%02x%s%s", flag, len(correlationID), correlationID, replyID)
	if strings.ContainsAny(id, "/+#\x00") || !utf8.ValidString(id) {
		return "", fmt.Errorf("request id %q cannot be an MQTT topic segment", id)
	}
	return id, nil
}

// ReqID is a decoded request id.
type ReqID struct {
	CorrelationID string
	ReplyID       string
	Messaging     int
}

// DecodeReqID reads a request id for the response of device.
func DecodeReqID(id, device string) (ReqID, error) {
	if len(id) < 3 {
		return ReqID{}, ErrReqID
	}
	// Hono writes the flag with String.valueOf and reads it with
	// Integer.parseInt: one decimal digit.
	if id[0] < '0' || id[0] > '9' {
		return ReqID{}, ErrReqID
	}
	flag := id[0] - '0'
	n, err := strconv.ParseUint(id[1:3], 16, 16)
	if err != nil || 3+int(n) > len(id) {
		return ReqID{}, ErrReqID
	}
	r := ReqID{CorrelationID: id[3 : 3+n], ReplyID: id[3+n:], Messaging: int(flag>>1) & 3}
	if flag&1 != 0 {
		r.ReplyID = device + "/" + r.ReplyID
	}
	if r.ReplyID == "" {
		return ReqID{}, ErrReqID
	}
	return r, nil
}
