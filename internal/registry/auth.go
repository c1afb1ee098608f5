package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferry-iot/ferry/internal/store"
)

// GetCredentials returns a device's credentials without hashes, salts and
// keys, and the set's resource version.
func (r *Registry) GetCredentials(ctx context.Context, tenant, device string) ([]Credential, string, error) {
	var rec record[storedCredentials]
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		var ok bool
		var err error
		rec, ok, err = getRecord[storedCredentials](tx, credsKey(tenant, device))
		if err == nil && !ok {
			err = notFoundf("device %q in tenant %q", device, tenant)
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]Credential, len(rec.Object))
	for i, c := range rec.Object {
		out[i] = c.redacted()
	}
	return out, rec.Version, nil
}

// SetCredentials replaces a device's credential set (Hono's PUT) if its
// version is ifMatch, and returns the new version. creds should come from
// ParseCredentials.
//
// Secrets without an id are new: they need pwd-plain (hashed here), a
// pwd-hash or a key. A secret with the id of a stored secret of the same
// (type, auth-id) and no secret material keeps the stored material; with
// material, it replaces it. This is Hono's patch mode, which lets a client
// PUT back what it got from GetCredentials.
func (r *Registry) SetCredentials(ctx context.Context, tenant, device string, creds []Credential, ifMatch string) (string, error) {
	// Validate again: creds may have been built in code.
	seen := map[string]bool{}
	for i := range creds {
		if err := creds[i].check(); err != nil {
			return "", invalidf("credentials[%d]: %v", i, err)
		}
		k := creds[i].Type + "\x00" + creds[i].AuthID
		if seen[k] {
			return "", invalidf("credentials[%d]: type %q and auth-id %q listed twice", i, creds[i].Type, creds[i].AuthID)
		}
		seen[k] = true
	}
	// Hash outside the transaction: bcrypt is slow, and the store runs one
	// writer at a time. The stored set is only needed for patch mode, which
	// is resolved inside.
	next := make(storedCredentials, len(creds))
	for i, c := range creds {
		c.Secrets = append([]Secret(nil), c.Secrets...)
		for j := range c.Secrets {
			s := &c.Secrets[j]
			if s.PasswordPlain == "" {
				continue
			}
			fn := s.HashFunction
			if fn == "" {
				fn = r.opts.HashFunction
			}
			hash, salt, err := hashPassword(fn, s.PasswordPlain, r.opts.BcryptCost)
			if err != nil {
				return "", invalidf("credentials[%d].secrets[%d]: %v", i, j, err)
			}
			s.HashFunction, s.PasswordHash, s.Salt, s.PasswordPlain = fn, hash, salt, ""
		}
		next[i] = c
	}
	for i, c := range next {
		for j, s := range c.Secrets {
			if s.PasswordHash != "" && s.HashFunction == HashBcrypt {
				if err := checkHash(s.HashFunction, s.PasswordHash, s.Salt, r.opts.MaxBcryptCost); err != nil {
					return "", invalidf("credentials[%d].secrets[%d]: %v", i, j, err)
				}
			}
		}
	}
	version := newID()
	err := r.update(ctx, Change{Tenant: tenant, Device: device, Kind: CredentialsUpdated}, func(tx store.RegistryTx) error {
		// A store may run fn again after a conflict (PostgreSQL): patch a
		// fresh copy each time, never the previous attempt's result.
		next := cloneCredentials(next)
		t, err := requireTenant(tx, tenant)
		if err != nil {
			return err
		}
		old, err := getVersion[storedCredentials](tx, credsKey(tenant, device), ifMatch, fmt.Sprintf("device %q in tenant %q", device, tenant))
		if err != nil {
			return err
		}
		if l := t.RegistrationLimits; l != nil && l.MaxCredentialsPerDevice >= 0 && len(next) > l.MaxCredentialsPerDevice {
			return fmt.Errorf("%w: tenant %q allows %d credentials per device", ErrLimitExceeded, tenant, l.MaxCredentialsPerDevice)
		}
		if err := patchSecrets(next, old.Object); err != nil {
			return err
		}
		for _, c := range next {
			owner, ok, err := tx.Get(authKey(tenant, c.Type, c.AuthID))
			if err != nil {
				return err
			}
			if ok && string(owner) != device {
				return conflictf("credentials of type %q with auth-id %q belong to another device of tenant %q", c.Type, c.AuthID, tenant)
			}
		}
		for _, c := range old.Object {
			if err := tx.Delete(authKey(tenant, c.Type, c.AuthID)); err != nil {
				return err
			}
		}
		for _, c := range next {
			if err := tx.Put(authKey(tenant, c.Type, c.AuthID), []byte(device)); err != nil {
				return err
			}
		}
		return putRecord(tx, credsKey(tenant, device), record[storedCredentials]{version, next})
	})
	if err != nil {
		return "", err
	}
	return version, nil
}

// cloneCredentials copies cs deeply enough for patchSecrets to modify.
func cloneCredentials(cs storedCredentials) storedCredentials {
	out := make(storedCredentials, len(cs))
	for i, c := range cs {
		c.Secrets = append([]Secret(nil), c.Secrets...)
		out[i] = c
	}
	return out
}

// patchSecrets resolves secret references (Hono's patch mode) against the
// stored set and gives new secrets an id.
func patchSecrets(next, old storedCredentials) error {
	for i := range next {
		c := &next[i]
		var prev *Credential
		for j := range old {
			if old[j].Type == c.Type && old[j].AuthID == c.AuthID {
				prev = &old[j]
			}
		}
		for j := range c.Secrets {
			s := &c.Secrets[j]
			if s.ID == "" {
				s.ID = newID()
				continue
			}
			var ps *Secret
			if prev != nil {
				for k := range prev.Secrets {
					if prev.Secrets[k].ID == s.ID {
						ps = &prev.Secrets[k]
					}
				}
			}
			if ps == nil {
				if s.hasConfidential() || c.Type == TypeX509 {
					continue // a new secret with a chosen id
				}
				return invalidf("credentials[%d].secrets[%d]: no secret with id %q to keep for type %q and auth-id %q", i, j, s.ID, c.Type, c.AuthID)
			}
			if !s.hasConfidential() {
				s.HashFunction, s.PasswordHash, s.Salt, s.Key = ps.HashFunction, ps.PasswordHash, ps.Salt, ps.Key
			}
		}
	}
	return nil
}

// Identity is an authenticated device.
type Identity struct {
	TenantID string
	DeviceID string
	AuthID   string
	Tenant   Tenant
	Device   Device
}

// Authenticate checks a username/password login (`auth-id@tenant`, split by
// the caller) against the tenant's hashed-password credentials.
//
// It fails with ErrBadCredentials for an unknown tenant or auth-id, a wrong
// password or no secret valid now, and with ErrDisabled (wrapped with which
// record) when the password is right but the tenant, device or credential is
// disabled: adapters answer those differently (MQTT 5: 0x86 versus 0x87/0x8A).
//
// bcrypt makes a call take tens of milliseconds on purpose; callers bound
// the concurrency.
func (r *Registry) Authenticate(ctx context.Context, tenant, authID, password string) (Identity, error) {
	res, err := r.resolve(ctx, tenant, TypeHashedPassword, authID)
	if err != nil {
		return Identity{}, err
	}
	now := r.opts.Now()
	ok := false
	for i := range res.Credential.Secrets {
		s := &res.Credential.Secrets[i]
		if s.ValidAt(now) && verifyPassword(s, password) {
			ok = true
			break
		}
	}
	if !ok {
		return Identity{}, fmt.Errorf("%w: tenant %q, auth-id %q", ErrBadCredentials, tenant, authID)
	}
	return res.Identity, res.enabled()
}

// Resolved is the result of ResolveCredentials: the identity the credential
// belongs to and the credential with its secret material.
type Resolved struct {
	Identity
	Credential Credential
}

// enabled reports ErrDisabled for a disabled tenant, device or credential.
func (res *Resolved) enabled() error {
	switch {
	case !res.Tenant.Enabled:
		return fmt.Errorf("%w: tenant %q", ErrDisabled, res.TenantID)
	case !res.Device.Enabled:
		return fmt.Errorf("%w: device %q of tenant %q", ErrDisabled, res.DeviceID, res.TenantID)
	case !res.Credential.Enabled:
		return fmt.Errorf("%w: credentials %q of device %q", ErrDisabled, res.AuthID, res.DeviceID)
	}
	return nil
}

// ResolveCredentials finds the credential of the given type and auth-id in
// a tenant (an X.509 subject DN, a PSK identity), for adapters that verify
// the secret themselves. It fails with ErrBadCredentials when there is none
// and with ErrDisabled when the tenant, device or credential is disabled;
// expired secrets are the caller's to check (Secret.ValidAt).
func (r *Registry) ResolveCredentials(ctx context.Context, tenant, typ, authID string) (Resolved, error) {
	res, err := r.resolve(ctx, tenant, typ, authID)
	if err != nil {
		return Resolved{}, err
	}
	return res, res.enabled()
}

func (r *Registry) resolve(ctx context.Context, tenant, typ, authID string) (Resolved, error) {
	res := Resolved{Identity: Identity{TenantID: tenant, AuthID: authID}}
	bad := fmt.Errorf("%w: tenant %q, type %q, auth-id %q", ErrBadCredentials, tenant, typ, authID)
	if !ValidTenantID(tenant) {
		return res, bad
	}
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		t, ok, err := getRecord[Tenant](tx, tenantKey(tenant))
		if err != nil || !ok {
			return cmpErr(err, bad)
		}
		dev, ok, err := tx.Get(authKey(tenant, typ, authID))
		if err != nil || !ok {
			return cmpErr(err, bad)
		}
		res.Tenant, res.DeviceID = t.Object, string(dev)
		d, ok, err := getRecord[Device](tx, deviceKey(tenant, res.DeviceID))
		if err != nil || !ok {
			return cmpErr(err, bad)
		}
		res.Device = d.Object
		creds, _, err := getRecord[storedCredentials](tx, credsKey(tenant, res.DeviceID))
		if err != nil {
			return err
		}
		for _, c := range creds.Object {
			if c.Type == typ && c.AuthID == authID {
				res.Credential = c
				return nil
			}
		}
		return bad
	})
	return res, err
}

// cmpErr returns err if set, else fallback.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// SplitUsername splits a login user name `auth-id@tenant` at its last '@'
// (tenant ids cannot contain one; auth-ids may, e.g. e-mail addresses). ok
// is false when there is no '@' or either part is empty.
func SplitUsername(username string) (authID, tenant string, ok bool) {
	i := strings.LastIndexByte(username, '@')
	if i <= 0 || i == len(username)-1 {
		return "", "", false
	}
	return username[:i], username[i+1:], true
}
