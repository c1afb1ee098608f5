// Package frame implements AMQP 1.0 framing (OASIS AMQP 1.0, part 2,
// "Transport"), the SASL frames of part 5 and the message format of part 3:
// frame headers, the nine performatives, SASL frames, message sections,
// delivery states, sources and targets, and error conditions.
//
// # Basics
//
// Each performative is a struct whose fields mirror the spec's field list;
// the spec's definition is quoted above it. Every frame body implements the
// sealed Body interface. Append writes a whole frame (header and body) to a
// caller-owned buffer; ParseHeader and DecodeBody read one back:
//
//	buf, err = frame.Append(buf[:0], frame.TypeAMQP, channel, &frame.Flow{...})
//	h, err := frame.ParseHeader(raw[:frame.HeaderSize])
//	body, err := frame.DecodeBody(h.Type, raw[h.DataOffset*4 : h.Size])
//
// The package knows nothing of connections or sessions: it takes bytes and
// starts no goroutines, so its fuzz targets need only bytes.
//
// # Caveats
//
//   - DecodeBody returns bodies that alias its input: Transfer.Payload and
//     binary fields (delivery tags, SASL responses) point into it. A caller
//     that reuses its read buffer must copy them first. Message.Decode, by
//     contrast, copies what it keeps.
//   - Absent fields take the spec's default on decode. Optional numeric
//     fields without a default are pointers (nil means absent).
//   - Transactions (coordinator targets and transactional states) are not
//     implemented: they decode as an error.
package frame
