package registryapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-iot/ferry/internal/registry"
)

// parseBody reads the request body and parses it; on failure it has
// answered and reports false.
func parseBody[T any](a *api, w http.ResponseWriter, r *http.Request, parse func([]byte) (T, error)) (T, bool) {
	var v T
	body, ok := a.body(w, r)
	if !ok {
		return v, false
	}
	v, err := parse(body)
	if err != nil {
		a.fail(w, r, err)
		return v, false
	}
	return v, true
}

// found answers a read: 200 with v and its version as ETag, or err.
func (a *api) found(w http.ResponseWriter, r *http.Request, v any, version string, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, v)
}

// noContent answers a change: 204 with the new version as ETag (none for
// a delete), or err.
func (a *api) noContent(w http.ResponseWriter, r *http.Request, version string, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if version != "" {
		setETag(w, version)
	}
	w.WriteHeader(http.StatusNoContent)
}

// created answers a create: 201, Location, ETag and {"id": ...}.
func created(w http.ResponseWriter, location, id, version string) {
	w.Header().Set("Location", location)
	setETag(w, version)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (a *api) createTenant(w http.ResponseWriter, r *http.Request) {
	t, ok := parseBody(a, w, r, registry.ParseTenant)
	if !ok {
		return
	}
	id, version, err := a.reg.CreateTenant(r.Context(), r.PathValue("tenant"), t)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	created(w, "/v1/tenants/"+url.PathEscape(id), id, version)
}

func (a *api) getTenant(w http.ResponseWriter, r *http.Request) {
	t, version, err := a.reg.GetTenant(r.Context(), r.PathValue("tenant"))
	a.found(w, r, t, version, err)
}

func (a *api) updateTenant(w http.ResponseWriter, r *http.Request) {
	t, ok := parseBody(a, w, r, registry.ParseTenant)
	if !ok {
		return
	}
	version, err := a.reg.UpdateTenant(r.Context(), r.PathValue("tenant"), t, ifMatch(r))
	a.noContent(w, r, version, err)
}

func (a *api) deleteTenant(w http.ResponseWriter, r *http.Request) {
	a.noContent(w, r, "", a.reg.DeleteTenant(r.Context(), r.PathValue("tenant"), ifMatch(r)))
}

// parseQuery reads Hono's search parameters.
func parseQuery(v url.Values) (registry.Query, error) {
	var q registry.Query
	num := func(name string, dst *int) error {
		s := v.Get(name)
		if s == "" {
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return badQuery(name + " must be an integer")
		}
		*dst = n
		return nil
	}
	if err := num("pageSize", &q.PageSize); err != nil {
		return q, err
	}
	if v.Get("pageSize") != "" && q.PageSize == 0 {
		return q, badQuery("pageSize must be between 1 and 200")
	}
	if err := num("pageOffset", &q.PageOffset); err != nil {
		return q, err
	}
	for _, s := range v["filterJson"] {
		f, err := registry.ParseFilter(s)
		if err != nil {
			return q, err
		}
		q.Filters = append(q.Filters, f)
	}
	for _, s := range v["sortJson"] {
		o, err := registry.ParseSort(s)
		if err != nil {
			return q, err
		}
		q.Sort = append(q.Sort, o)
	}
	return q, nil
}

type queryError string

func (e queryError) Error() string { return string(e) }
func (e queryError) Unwrap() error { return registry.ErrInvalid }

func badQuery(msg string) error { return queryError(msg) }

// writeSearch answers a search: 404 when nothing matches, as Hono does.
func writeSearch[T any](w http.ResponseWriter, res registry.SearchResult[T]) {
	if res.Total == 0 {
		writeError(w, http.StatusNotFound, "no matching objects")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *api) searchTenants(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.Query())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.reg.SearchTenants(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeSearch(w, res)
}

func (a *api) createDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := parseBody(a, w, r, registry.ParseDevice)
	if !ok {
		return
	}
	tenant := r.PathValue("tenant")
	id, version, err := a.reg.CreateDevice(r.Context(), tenant, r.PathValue("device"), d)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	created(w, "/v1/devices/"+url.PathEscape(tenant)+"/"+url.PathEscape(id), id, version)
}

func (a *api) getDevice(w http.ResponseWriter, r *http.Request) {
	d, version, err := a.reg.GetDevice(r.Context(), r.PathValue("tenant"), r.PathValue("device"))
	a.found(w, r, d, version, err)
}

func (a *api) updateDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := parseBody(a, w, r, registry.ParseDevice)
	if !ok {
		return
	}
	version, err := a.reg.UpdateDevice(r.Context(), r.PathValue("tenant"), r.PathValue("device"), d, ifMatch(r))
	a.noContent(w, r, version, err)
}

func (a *api) deleteDevice(w http.ResponseWriter, r *http.Request) {
	a.noContent(w, r, "", a.reg.DeleteDevice(r.Context(), r.PathValue("tenant"), r.PathValue("device"), ifMatch(r)))
}

func (a *api) deleteAllDevices(w http.ResponseWriter, r *http.Request) {
	a.noContent(w, r, "", a.reg.DeleteAllDevices(r.Context(), r.PathValue("tenant")))
}

func (a *api) searchDevices(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := parseQuery(v)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var isGateway *bool
	if s := v.Get("isGateway"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			a.fail(w, r, badQuery("isGateway must be true or false"))
			return
		}
		isGateway = &b
	}
	res, err := a.reg.SearchDevices(r.Context(), r.PathValue("tenant"), q, isGateway)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeSearch(w, res)
}

func (a *api) getCredentials(w http.ResponseWriter, r *http.Request) {
	creds, version, err := a.reg.GetCredentials(r.Context(), r.PathValue("tenant"), r.PathValue("device"))
	a.found(w, r, creds, version, err)
}

func (a *api) setCredentials(w http.ResponseWriter, r *http.Request) {
	creds, ok := parseBody(a, w, r, registry.ParseCredentials)
	if !ok {
		return
	}
	version, err := a.reg.SetCredentials(r.Context(), r.PathValue("tenant"), r.PathValue("device"), creds, ifMatch(r))
	a.noContent(w, r, version, err)
}
