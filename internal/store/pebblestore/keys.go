package pebblestore

import (
	"encoding/binary"
)

// Record kinds: the first byte of every key. See doc.go for the layout.
const (
	kindMeta         = 0x00
	kindSession      = 's'
	kindSubscription = 'u'
	kindOutbound     = 'o'
	kindInbound      = 'i'
	kindQueue        = 'q'
	kindWill         = 'w'
	kindRetained     = 'r'
)

// sessionKinds are the kinds stored under a session's prefix, all removed
// by DeleteSession.
var sessionKinds = []byte{kindSession, kindSubscription, kindOutbound, kindInbound, kindQueue, kindWill}

// formatKey holds the version of this layout, written when a directory is
// first opened.
var formatKey = []byte{kindMeta, 'f', 'o', 'r', 'm', 'a', 't'}

const formatVersion = 1

func appendLP(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// sessionPrefix returns kind | len tenant | tenant | len client | client:
// the key of a session's record of that kind, and the prefix of its keys
// when the kind has several per session.
func sessionPrefix(kind byte, tenant, clientID string, extra int) []byte {
	k := make([]byte, 0, 1+2*binary.MaxVarintLen16+len(tenant)+len(clientID)+extra)
	k = append(k, kind)
	k = appendLP(k, tenant)
	return appendLP(k, clientID)
}

func packetKey(kind byte, tenant, clientID string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(sessionPrefix(kind, tenant, clientID, 2), pid)
}

func queueKey(tenant, clientID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(sessionPrefix(kindQueue, tenant, clientID, 8), seq)
}

func subscriptionKey(tenant, clientID, filter string) []byte {
	return append(sessionPrefix(kindSubscription, tenant, clientID, len(filter)), filter...)
}

func retainedPrefix(tenant string) []byte {
	return appendLP([]byte{kindRetained}, tenant)
}

func retainedKey(tenant, topic string) []byte {
	return append(retainedPrefix(tenant), topic...)
}

// parseSessionKey splits the tenant and client id back out of a session
// key, returning what follows them.
func parseSessionKey(key []byte) (tenant, clientID string, rest []byte, ok bool) {
	if len(key) < 1 {
		return "", "", nil, false
	}
	b := key[1:]
	t, b, ok := readLP(b)
	if !ok {
		return "", "", nil, false
	}
	c, b, ok := readLP(b)
	if !ok {
		return "", "", nil, false
	}
	return t, c, b, true
}

func readLP(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}
