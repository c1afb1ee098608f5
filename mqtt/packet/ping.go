package packet

// Pingreq is the PINGREQ control packet: a fixed header only.
type Pingreq struct{}

// Pingresp is the PINGRESP control packet: a fixed header only.
type Pingresp struct{}

// Type returns TypePingreq.
func (p *Pingreq) Type() Type { return TypePingreq }

// Type returns TypePingresp.
func (p *Pingresp) Type() Type { return TypePingresp }

// Append appends the two bytes of a PINGREQ to dst.
func (p *Pingreq) Append(dst []byte, v Version) ([]byte, error) {
	return appendEmpty(dst, v, TypePingreq)
}

// Append appends the two bytes of a PINGRESP to dst.
func (p *Pingresp) Append(dst []byte, v Version) ([]byte, error) {
	return appendEmpty(dst, v, TypePingresp)
}

// Decode checks a PINGREQ: reserved flags 0 and an empty body.
func (p *Pingreq) Decode(flags byte, body []byte, v Version) error {
	return asError(decodeEmpty(flags, body, v, TypePingreq))
}

// Decode checks a PINGRESP: reserved flags 0 and an empty body.
func (p *Pingresp) Decode(flags byte, body []byte, v Version) error {
	return asError(decodeEmpty(flags, body, v, TypePingresp))
}

func appendEmpty(dst []byte, v Version, t Type) ([]byte, error) {
	if e := checkVersion(v); e != nil {
		return dst, e
	}
	return append(dst, byte(t)<<4, 0), nil
}

func decodeEmpty(flags byte, body []byte, v Version, t Type) *Error {
	if e := checkVersion(v); e != nil {
		return e
	}
	if e := checkFlags(t, flags); e != nil {
		return e
	}
	if len(body) != 0 {
		// 3.12.2, 3.13.2: no variable header and no payload.
		return errorf(MalformedPacket, "%v: %d unexpected bytes", t, len(body))
	}
	return nil
}
