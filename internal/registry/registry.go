package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/store"
)

// Options configure a Registry. The zero value is Hono's defaults.
type Options struct {
	// HashFunction hashes passwords given as pwd-plain (unless the secret
	// names its own hash-function): "bcrypt" (default), "sha-256" or
	// "sha-512".
	HashFunction string
	// BcryptCost is the cost of new bcrypt hashes. Default 10.
	BcryptCost int
	// MaxBcryptCost is the highest cost accepted in a pwd-hash given by a
	// client; Hono's maxBcryptCostFactor. Default 10.
	MaxBcryptCost int
	// Now returns the current time; default time.Now. For tests.
	Now func() time.Time
}

func (o *Options) withDefaults() (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	if v.HashFunction == "" {
		v.HashFunction = HashBcrypt
	}
	switch v.HashFunction {
	case HashBcrypt, HashSHA256, HashSHA512:
	default:
		return v, fmt.Errorf("registry: hash function %q is not supported", v.HashFunction)
	}
	if v.BcryptCost == 0 {
		v.BcryptCost = 10
	}
	if v.MaxBcryptCost == 0 {
		v.MaxBcryptCost = max(10, v.BcryptCost)
	}
	if v.BcryptCost < bcrypt.MinCost || v.BcryptCost > v.MaxBcryptCost || v.MaxBcryptCost > bcrypt.MaxCost {
		return v, fmt.Errorf("registry: bcrypt cost %d and maximum %d must satisfy %d <= cost <= maximum <= %d",
			v.BcryptCost, v.MaxBcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if v.Now == nil {
		v.Now = time.Now
	}
	return v, nil
}

// Registry is the device registry service. It is safe for concurrent use.
type Registry struct {
	st     store.RegistryStore
	opts   Options
	notify notifier
}

// New returns a registry over st; opts may be nil.
func New(st store.RegistryStore, opts *Options) (*Registry, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Registry{st: st, opts: o, notify: notifier{origin: newID()}}, nil
}

// Key layout in the store. Tenant and device ids cannot contain '/', so a
// prefix scan of "d/<tenant>/" sees only that tenant's devices. The auth-id,
// which may contain anything, always comes last.
//
//	t/<tenant>                     tenant record
//	d/<tenant>/<device>            device record
//	c/<tenant>/<device>            credentials record (the whole set)
//	a/<tenant>/<type>/<auth-id>    device id: the unique (type, auth-id) index
//	n/<tenant>                     number of devices (registration limits)
//	ca/<subject-dn>\x00<tenant>    trust anchor group: trusted CA index
func tenantKey(t string) string           { return "t/" + t }
func deviceKey(t, d string) string        { return "d/" + t + "/" + d }
func credsKey(t, d string) string         { return "c/" + t + "/" + d }
func authKey(t, typ, a string) string     { return "a/" + t + "/" + typ + "/" + a }
func countKey(t string) string            { return "n/" + t }
func caKey(dn, t string) string           { return caPrefix(dn) + t }
func caPrefix(dn string) string           { return "ca/" + dn + "\x00" }
func tenantScope(prefix, t string) string { return prefix + t + "/" }

// record is the stored envelope of every record: its resource version and
// the object.
type record[T any] struct {
	Version string `json:"v"`
	Object  T      `json:"o"`
}

// storedCredentials is the credential set with hashes and salts.
type storedCredentials []Credential

// getRecord reads and decodes the record under key.
func getRecord[T any](tx store.RegistryReader, key string) (record[T], bool, error) {
	var r record[T]
	b, ok, err := tx.Get(key)
	if err != nil || !ok {
		return r, ok, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("registry: corrupt record %q: %w", key, err)
	}
	return r, true, nil
}

func putRecord[T any](tx store.RegistryTx, key string, r record[T]) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}

// checkVersion compares a stored version with the expected one: "" accepts
// any, "*" any existing record, anything else must be equal.
// getVersion reads the record of what, under key, for a change that
// expects version ifMatch: ErrNotFound when it is missing, ErrPrecondition
// at another version.
func getVersion[T any](tx store.RegistryReader, key, ifMatch, what string) (record[T], error) {
	old, ok, err := getRecord[T](tx, key)
	if err != nil {
		return old, err
	}
	if !ok {
		return old, notFoundf("%s", what)
	}
	return old, checkVersion(old.Version, ifMatch)
}

func checkVersion(stored, expected string) error {
	if expected == "" || expected == "*" || expected == stored {
		return nil
	}
	return fmt.Errorf("%w: the resource version is %s, not %s", ErrPrecondition, stored, expected)
}

// deleteScope deletes every key under prefix.
func deleteScope(tx store.RegistryTx, prefix string) error {
	var keys []string
	if err := tx.Scan(prefix, "", func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func readCount(tx store.RegistryReader, tenant string) (int, error) {
	b, ok, err := tx.Get(countKey(tenant))
	if err != nil || !ok {
		return 0, err
	}
	return strconv.Atoi(string(b))
}

func addCount(tx store.RegistryTx, tenant string, delta int) error {
	n, err := readCount(tx, tenant)
	if err != nil {
		return err
	}
	return tx.Put(countKey(tenant), []byte(strconv.Itoa(max(0, n+delta))))
}

// CreateTenant creates a tenant; an empty id asks the registry for one. It
// returns the id and the resource version.
func (r *Registry) CreateTenant(ctx context.Context, id string, t Tenant) (string, string, error) {
	if id == "" {
		id = newID()
	}
	if err := checkTenantID(id); err != nil {
		return "", "", err
	}
	if err := t.Validate(); err != nil {
		return "", "", err
	}
	version := newID()
	err := r.update(ctx, Change{Tenant: id, Kind: TenantCreated}, func(tx store.RegistryTx) error {
		if _, ok, err := tx.Get(tenantKey(id)); err != nil {
			return err
		} else if ok {
			return conflictf("tenant %q exists already", id)
		}
		if err := indexTrustedCAs(tx, id, nil, &t); err != nil {
			return err
		}
		return putRecord(tx, tenantKey(id), record[Tenant]{version, t})
	})
	if err != nil {
		return "", "", err
	}
	return id, version, nil
}

// GetTenant returns a tenant and its resource version.
func (r *Registry) GetTenant(ctx context.Context, id string) (Tenant, string, error) {
	var rec record[Tenant]
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		var ok bool
		var err error
		rec, ok, err = getRecord[Tenant](tx, tenantKey(id))
		if err == nil && !ok {
			err = notFoundf("tenant %q", id)
		}
		return err
	})
	return rec.Object, rec.Version, err
}

// UpdateTenant replaces a tenant if its version is ifMatch (see the package
// doc) and returns the new version.
func (r *Registry) UpdateTenant(ctx context.Context, id string, t Tenant, ifMatch string) (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	version := newID()
	err := r.update(ctx, Change{Tenant: id, Kind: TenantUpdated}, func(tx store.RegistryTx) error {
		old, err := getVersion[Tenant](tx, tenantKey(id), ifMatch, fmt.Sprintf("tenant %q", id))
		if err != nil {
			return err
		}
		if err := indexTrustedCAs(tx, id, &old.Object, &t); err != nil {
			return err
		}
		return putRecord(tx, tenantKey(id), record[Tenant]{version, t})
	})
	if err != nil {
		return "", err
	}
	return version, nil
}

// DeleteTenant deletes a tenant with all its devices and credentials.
func (r *Registry) DeleteTenant(ctx context.Context, id, ifMatch string) error {
	return r.update(ctx, Change{Tenant: id, Kind: TenantDeleted}, func(tx store.RegistryTx) error {
		old, err := getVersion[Tenant](tx, tenantKey(id), ifMatch, fmt.Sprintf("tenant %q", id))
		if err != nil {
			return err
		}
		if err := indexTrustedCAs(tx, id, &old.Object, nil); err != nil {
			return err
		}
		for _, p := range []string{"d/", "c/", "a/"} {
			if err := deleteScope(tx, tenantScope(p, id)); err != nil {
				return err
			}
		}
		if err := tx.Delete(countKey(id)); err != nil {
			return err
		}
		return tx.Delete(tenantKey(id))
	})
}

// indexTrustedCAs moves the trusted CA index of tenant from old's CAs to
// new's, refusing a subject DN that another tenant trusts unless both are
// in the same trust anchor group (Hono's rule: the issuer DN of a client
// certificate must identify the tenant, or its group).
func indexTrustedCAs(tx store.RegistryTx, tenant string, old, new *Tenant) error {
	if old != nil {
		for _, ca := range old.TrustedCAs {
			if err := tx.Delete(caKey(ca.SubjectDN, tenant)); err != nil {
				return err
			}
		}
	}
	if new == nil {
		return nil
	}
	for _, ca := range new.TrustedCAs {
		var clash string
		err := tx.Scan(caPrefix(ca.SubjectDN), "", func(k string, v []byte) bool {
			other := k[len(caPrefix(ca.SubjectDN)):]
			if other != tenant && (new.TrustAnchorGroup == "" || string(v) != new.TrustAnchorGroup) {
				clash = other
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if clash != "" {
			return conflictf("trusted CA %q is already used by tenant %q (use one trust-anchor-group to share it)", ca.SubjectDN, clash)
		}
		if err := tx.Put(caKey(ca.SubjectDN, tenant), []byte(new.TrustAnchorGroup)); err != nil {
			return err
		}
	}
	return nil
}

// SearchTenants returns one page of the tenants matching q.
func (r *Registry) SearchTenants(ctx context.Context, q Query) (SearchResult[TenantWithID], error) {
	if err := q.normalize(); err != nil {
		return SearchResult[TenantWithID]{}, err
	}
	var items []searchItem[TenantWithID]
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		var derr error
		err := tx.Scan("t/", "", func(k string, v []byte) bool {
			var rec record[Tenant]
			if derr = json.Unmarshal(v, &rec); derr != nil {
				return false
			}
			id := strings.TrimPrefix(k, "t/")
			var it searchItem[TenantWithID]
			it, derr = newSearchItem(id, TenantWithID{id, rec.Object})
			items = append(items, it)
			return derr == nil
		})
		if err != nil {
			return err
		}
		return derr
	})
	if err != nil {
		return SearchResult[TenantWithID]{}, err
	}
	return apply(q, items), nil
}

// TenantsByTrustedCA returns the ids of the tenants that trust a CA with the
// given subject DN: one, or the members of a trust anchor group.
func (r *Registry) TenantsByTrustedCA(ctx context.Context, subjectDN string) ([]string, error) {
	var ids []string
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		p := caPrefix(subjectDN)
		return tx.Scan(p, "", func(k string, _ []byte) bool {
			ids = append(ids, k[len(p):])
			return true
		})
	})
	return ids, err
}
