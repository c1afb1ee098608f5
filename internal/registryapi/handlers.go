package registryapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-iot/ferry/internal/registry"
)

// created answers a create: 201, Location, ETag and {"id": ...}.
func created(w http.ResponseWriter, location, id, version string) {
	w.Header().Set("Location", location)
	setETag(w, version)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (a *api) createTenant(w http.ResponseWriter, r *http.Request) {
	body, ok := a.body(w, r)
	if !ok {
		return
	}
	t, err := registry.ParseTenant(body)
	if err != nil {
		a.fail(w, r, err)
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
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, t)
}

func (a *api) updateTenant(w http.ResponseWriter, r *http.Request) {
	body, ok := a.body(w, r)
	if !ok {
		return
	}
	t, err := registry.ParseTenant(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := a.reg.UpdateTenant(r.Context(), r.PathValue("tenant"), t, ifMatch(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteTenant(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.DeleteTenant(r.Context(), r.PathValue("tenant"), ifMatch(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
	body, ok := a.body(w, r)
	if !ok {
		return
	}
	d, err := registry.ParseDevice(body)
	if err != nil {
		a.fail(w, r, err)
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
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, d)
}

func (a *api) updateDevice(w http.ResponseWriter, r *http.Request) {
	body, ok := a.body(w, r)
	if !ok {
		return
	}
	d, err := registry.ParseDevice(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := a.reg.UpdateDevice(r.Context(), r.PathValue("tenant"), r.PathValue("device"), d, ifMatch(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteDevice(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.DeleteDevice(r.Context(), r.PathValue("tenant"), r.PathValue("device"), ifMatch(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) deleteAllDevices(w http.ResponseWriter, r *http.Request) {
	if err := a.reg.DeleteAllDevices(r.Context(), r.PathValue("tenant")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, creds)
}

func (a *api) setCredentials(w http.ResponseWriter, r *http.Request) {
	body, ok := a.body(w, r)
	if !ok {
		return
	}
	creds, err := registry.ParseCredentials(body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := a.reg.SetCredentials(r.Context(), r.PathValue("tenant"), r.PathValue("device"), creds, ifMatch(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	setETag(w, version)
	w.WriteHeader(http.StatusNoContent)
}
