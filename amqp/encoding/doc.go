// Package encoding implements the AMQP 1.0 type system (OASIS AMQP 1.0,
// part 1, "Types"): primitive types, described types and the compound
// types list, map and array.
//
// # Basics
//
// Encoders append to a caller-owned slice and return it, like
// strconv.AppendInt: AppendUint(dst, 7) writes the smallest encoding of
// the value (here smalluint, 0x52 0x07). AppendValue encodes any supported
// Go value; see its doc for the Go type of each AMQP type.
//
// Decoding goes through a Reader, which keeps the first error it meets
// ("sticky" error, like franz-go's kbin.Reader): after an error every call
// returns a zero value, so a decoder reads all its fields and checks
// Reader.Err once. Every compact encoding is accepted (uint0, smalluint,
// list0, ...).
//
// Composite types (the performatives and message sections) are described
// lists. ListBuilder writes them with trailing null fields dropped, and
// Reader.ListStart/ListEnd read them field by field, so a decoder can apply
// the spec's default to an absent or null field.
//
// # Caveats
//
//   - Strings and symbols returned by Reader are copies, but binary values
//     (Reader.Binary, and []byte inside Reader.Value results) are
//     sub-slices of the input. Callers that keep binary data beyond the
//     life of the input must copy it.
//   - Maps decode to Map, an ordered slice of key/value pairs, because AMQP
//     allows keys (binary, lists) that Go maps cannot hold.
//   - Decimal types are kept as their raw IEEE 754 bytes; no arithmetic.
//   - Nesting is limited to MaxDepth compound values, and every size or
//     count is checked against the remaining input before anything is
//     allocated, so hostile input can neither exhaust the stack nor memory.
//   - Descriptors are read as ulong codes or symbols; the package does not
//     map symbolic descriptors ("amqp:open:list") to codes.
package encoding
