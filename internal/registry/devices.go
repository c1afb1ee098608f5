package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferry-iot/ferry/internal/store"
)

// requireTenant loads a tenant inside a transaction, or fails with
// ErrNotFound.
func requireTenant(tx store.RegistryReader, tenant string) (Tenant, error) {
	rec, ok, err := getRecord[Tenant](tx, tenantKey(tenant))
	if err == nil && !ok {
		err = notFoundf("tenant %q", tenant)
	}
	return rec.Object, err
}

// CreateDevice registers a device with an empty credential set; an empty id
// asks the registry for one. It returns the id and the resource version.
func (r *Registry) CreateDevice(ctx context.Context, tenant, id string, d Device) (string, string, error) {
	if id == "" {
		id = newID()
	}
	if err := checkDeviceID(id); err != nil {
		return "", "", err
	}
	if err := d.Validate(id); err != nil {
		return "", "", err
	}
	now := r.opts.Now().UTC()
	d.Status = &DeviceStatus{Created: now}
	version := newID()
	err := r.update(ctx, Change{Tenant: tenant, Device: id, Kind: DeviceCreated}, func(tx store.RegistryTx) error {
		t, err := requireTenant(tx, tenant)
		if err != nil {
			return err
		}
		if _, ok, err := tx.Get(deviceKey(tenant, id)); err != nil {
			return err
		} else if ok {
			return conflictf("device %q exists already in tenant %q", id, tenant)
		}
		if l := t.RegistrationLimits; l != nil && l.MaxDevices >= 0 {
			n, err := readCount(tx, tenant)
			if err != nil {
				return err
			}
			if n >= l.MaxDevices {
				return fmt.Errorf("%w: tenant %q allows %d devices", ErrLimitExceeded, tenant, l.MaxDevices)
			}
		}
		if err := addCount(tx, tenant, 1); err != nil {
			return err
		}
		if err := putRecord(tx, credsKey(tenant, id), record[storedCredentials]{newID(), storedCredentials{}}); err != nil {
			return err
		}
		return putRecord(tx, deviceKey(tenant, id), record[Device]{version, d})
	})
	if err != nil {
		return "", "", err
	}
	return id, version, nil
}

// GetDevice returns a device and its resource version.
func (r *Registry) GetDevice(ctx context.Context, tenant, id string) (Device, string, error) {
	var rec record[Device]
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		var ok bool
		var err error
		rec, ok, err = getRecord[Device](tx, deviceKey(tenant, id))
		if err == nil && !ok {
			err = notFoundf("device %q in tenant %q", id, tenant)
		}
		return err
	})
	return rec.Object, rec.Version, err
}

// UpdateDevice replaces a device if its version is ifMatch and returns the
// new version. The status is kept and its last-update set.
func (r *Registry) UpdateDevice(ctx context.Context, tenant, id string, d Device, ifMatch string) (string, error) {
	if err := d.Validate(id); err != nil {
		return "", err
	}
	version := newID()
	err := r.update(ctx, Change{Tenant: tenant, Device: id, Kind: DeviceUpdated}, func(tx store.RegistryTx) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		old, err := getVersion[Device](tx, deviceKey(tenant, id), ifMatch, fmt.Sprintf("device %q in tenant %q", id, tenant))
		if err != nil {
			return err
		}
		st := DeviceStatus{}
		if old.Object.Status != nil {
			st = *old.Object.Status
		}
		st.LastUpdate = r.opts.Now().UTC()
		d.Status = &st
		return putRecord(tx, deviceKey(tenant, id), record[Device]{version, d})
	})
	if err != nil {
		return "", err
	}
	return version, nil
}

// DeleteDevice deletes a device and its credentials.
func (r *Registry) DeleteDevice(ctx context.Context, tenant, id, ifMatch string) error {
	return r.update(ctx, Change{Tenant: tenant, Device: id, Kind: DeviceDeleted}, func(tx store.RegistryTx) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		if _, err := getVersion[Device](tx, deviceKey(tenant, id), ifMatch, fmt.Sprintf("device %q in tenant %q", id, tenant)); err != nil {
			return err
		}
		return deleteDevice(tx, tenant, id)
	})
}

func deleteDevice(tx store.RegistryTx, tenant, id string) error {
	creds, _, err := getRecord[storedCredentials](tx, credsKey(tenant, id))
	if err != nil {
		return err
	}
	for _, c := range creds.Object {
		if err := tx.Delete(authKey(tenant, c.Type, c.AuthID)); err != nil {
			return err
		}
	}
	if err := tx.Delete(credsKey(tenant, id)); err != nil {
		return err
	}
	if err := addCount(tx, tenant, -1); err != nil {
		return err
	}
	return tx.Delete(deviceKey(tenant, id))
}

// DeleteAllDevices deletes every device of a tenant, with their
// credentials.
func (r *Registry) DeleteAllDevices(ctx context.Context, tenant string) error {
	return r.update(ctx, Change{Tenant: tenant, Kind: AllDevicesDeleted}, func(tx store.RegistryTx) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		for _, p := range []string{"d/", "c/", "a/"} {
			if err := deleteScope(tx, tenantScope(p, tenant)); err != nil {
				return err
			}
		}
		return tx.Delete(countKey(tenant))
	})
}

// SearchDevices returns one page of a tenant's devices matching q. With
// isGateway set, only gateways (true) or only non-gateways (false) count: a
// gateway is a device named in another device's via, or a member of a
// gateway group.
func (r *Registry) SearchDevices(ctx context.Context, tenant string, q Query, isGateway *bool) (SearchResult[DeviceWithID], error) {
	if err := q.normalize(); err != nil {
		return SearchResult[DeviceWithID]{}, err
	}
	var items []searchItem[DeviceWithID]
	err := r.st.ViewRegistry(ctx, func(tx store.RegistryReader) error {
		if _, err := requireTenant(tx, tenant); err != nil {
			return err
		}
		prefix := tenantScope("d/", tenant)
		var all []DeviceWithID
		gateways := map[string]bool{}
		var derr error
		err := tx.Scan(prefix, "", func(k string, v []byte) bool {
			var rec record[Device]
			if derr = json.Unmarshal(v, &rec); derr != nil {
				return false
			}
			d := DeviceWithID{strings.TrimPrefix(k, prefix), rec.Object}
			for _, g := range d.Via {
				gateways[g] = true
			}
			if d.IsGateway() {
				gateways[d.ID] = true
			}
			all = append(all, d)
			return true
		})
		if err != nil {
			return err
		}
		if derr != nil {
			return derr
		}
		for _, d := range all {
			if isGateway != nil && gateways[d.ID] != *isGateway {
				continue
			}
			it, err := newSearchItem(d.ID, d)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return SearchResult[DeviceWithID]{}, err
	}
	return apply(q, items), nil
}
