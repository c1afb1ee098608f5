package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/registryapi"
)

// apiFlags are the flags every registry command shares.
type apiFlags struct {
	apiURL        string
	adminPassword string
	dataDir       string
	timeout       time.Duration
}

func (f *apiFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.apiURL, "api-url", "http://127.0.0.1:8080", "URL of a running Ferry's management API (env FERRY_API_URL)")
	fl.StringVar(&f.adminPassword, "admin-password", "", "admin password of the API (env FERRY_ADMIN_PASSWORD; default: read from <data-dir>/"+registryapi.AdminPasswordFile+")")
	fl.StringVar(&f.dataDir, "data-dir", "./ferry-data", "data directory of the local Ferry, to find its generated admin password")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each API request")
}

// client builds the API client from the flags, the environment and the
// generated password file, in that order.
func (f *apiFlags) client(cmd *cobra.Command) (*apiClient, error) {
	raw := f.apiURL
	if !cmd.Flags().Changed("api-url") {
		if v, ok := os.LookupEnv("FERRY_API_URL"); ok {
			raw = v
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid --api-url %q: want http://host:port or https://host:port", raw)
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("invalid --timeout %v: must be positive", f.timeout)
	}
	pw := f.adminPassword
	if !cmd.Flags().Changed("admin-password") {
		pw = os.Getenv("FERRY_ADMIN_PASSWORD")
	}
	if pw == "" {
		path := filepath.Join(f.dataDir, registryapi.AdminPasswordFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no admin password: give --admin-password or set FERRY_ADMIN_PASSWORD (%s is not readable: %v)", path, errors.Unwrap(err))
		}
		pw = strings.TrimSpace(string(b))
	}
	return &apiClient{
		base:     strings.TrimSuffix(u.String(), "/"),
		password: pw,
		http:     &http.Client{Timeout: f.timeout},
	}, nil
}

// apiClient talks to the management API.
type apiClient struct {
	base     string
	password string
	http     *http.Client
}

type apiResponse struct {
	status int
	etag   string
	body   []byte
}

// apiError is a failed API call, worded for an operator.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// errNoResults is what the API's 404 for a search without results says.
const errNoResults = "no matching objects"

// do sends one request. body is marshalled to JSON unless nil; action
// ("get device") prefixes error messages.
func (c *apiClient) do(ctx context.Context, action, method, path string, body any, ifMatch string) (*apiResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	req.SetBasicAuth(registryapi.AdminUser, c.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if method != http.MethodGet {
		// The console's API wants it of every change; with Basic
		// authentication its value does not matter, and the registry
		// API ignores it.
		req.Header.Set(console.CSRFHeader, "ferry-cli")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot reach the Ferry API at %s (is `ferry serve` running? see --api-url): %w", action, c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the response: %w", action, err)
	}
	r := &apiResponse{status: resp.StatusCode, etag: resp.Header.Get("ETag"), body: b}
	if resp.StatusCode < 300 {
		return r, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	detail := e.Error
	if detail == "" {
		detail = strings.TrimSpace(string(b))
	}
	var msg string
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		msg = "unauthorized: the API refused the admin password (check --admin-password or FERRY_ADMIN_PASSWORD)"
	case http.StatusNotFound:
		msg = detail
		if !strings.HasPrefix(msg, "not found") && msg != errNoResults {
			msg = "not found: " + detail
		}
	case http.StatusConflict:
		msg = strings.TrimPrefix(detail, "conflict: ")
		msg = "conflict: " + msg
	case http.StatusPreconditionFailed:
		msg = "changed concurrently by someone else; run the command again"
	case http.StatusBadRequest:
		msg = "rejected by the API: " + strings.TrimPrefix(detail, "invalid: ")
	case http.StatusForbidden:
		msg = "refused: " + detail
	default:
		msg = fmt.Sprintf("unexpected answer %s: %s", resp.Status, detail)
	}
	return r, &apiError{status: resp.StatusCode, msg: action + ": " + msg}
}

// isNoResults reports whether err is the 404 of a search that matched
// nothing, which the commands show as an empty list.
func isNoResults(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.status == http.StatusNotFound && strings.HasSuffix(e.msg, errNoResults)
}

// printJSON writes indented JSON.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	raw = bytes.TrimSpace(raw)
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
