// Package registry holds Ferry's device registry: tenants, devices and their
// credentials, following Eclipse Hono's identity model and the validation
// rules of Hono's device registry management API (v1).
//
// # Basics
//
// A [Registry] is built with [New] over a [store.RegistryStore] (in memory:
// memstore.NewRegistry; embedded: pebblestore). Every method takes a context
// first. Records carry a resource version, returned as the ETag by the HTTP
// API: the update and delete methods take an expected version ("" for
// unconditional, "*" for any) and fail with [ErrPrecondition] when it does
// not match.
//
// Protocol adapters call [Registry.Authenticate] for username/password logins
// (`auth-id@tenant`) and [Registry.ResolveCredentials] for the other
// credential types (X.509 subject DN, PSK identity).
//
// Every committed change of a tenant, device or credential set is told to
// the registry's subscribers ([Registry.Subscribe]) as a [Change]; with a
// store whose transactions can carry it (pgstore: pg_notify, sent only if
// the transaction commits), to the other processes sharing the store too,
// which hand it on with [Registry.Notified].
//
// Errors wrap the sentinels [ErrInvalid], [ErrNotFound], [ErrConflict],
// [ErrPrecondition], [ErrLimitExceeded], [ErrBadCredentials] and
// [ErrDisabled]; match them with errors.Is. The HTTP API maps them to 400,
// 404, 409, 412 and 403.
//
// # Caveats
//
//   - Passwords given in plain text (`pwd-plain`) are hashed on write with the
//     configured function (bcrypt by default) and never stored; the read
//     methods for management ([Registry.GetCredentials]) strip hashes, salts
//     and keys.
//   - Searches scan every record of a tenant (or every tenant) and filter in
//     memory. That is fine for the embedded registry's size; a SQL backend
//     would push filters down.
//   - bcrypt verification is deliberately slow; Authenticate does no rate
//     limiting or pooling of its own, the adapters bound it.
package registry
