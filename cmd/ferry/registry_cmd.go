package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/registry"
)

// newRegistryCmds returns the registry commands (tenant, device,
// credentials). They talk to the management API of a running Ferry; they
// hold no registry logic, so the API stays the one place that validates.
func newRegistryCmds() []*cobra.Command {
	return []*cobra.Command{newTenantCmd(), newDeviceCmd(), newCredentialsCmd()}
}

// bodyFlags read a JSON object from --json or --file.
type bodyFlags struct {
	json, file string
}

func (b *bodyFlags) register(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&b.json, "json", "", "the "+what+" as a JSON object (Hono's format)")
	cmd.Flags().StringVar(&b.file, "file", "", "read the "+what+" JSON object from this file (- for stdin)")
}

// object returns the JSON object given, or an empty one.
func (b *bodyFlags) object(cmd *cobra.Command) (map[string]any, error) {
	var raw []byte
	switch {
	case b.json != "" && b.file != "":
		return nil, fmt.Errorf("invalid flags: give --json or --file, not both")
	case b.json != "":
		raw = []byte(b.json)
	case b.file == "-":
		var err error
		if raw, err = io.ReadAll(cmd.InOrStdin()); err != nil {
			return nil, err
		}
	case b.file != "":
		var err error
		if raw, err = os.ReadFile(b.file); err != nil {
			return nil, fmt.Errorf("invalid --file: %w", err)
		}
	default:
		return map[string]any{}, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("invalid JSON object: %v", errOr(err, "null"))
	}
	return obj, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// listFlags are the paging and filter flags of list commands.
type listFlags struct {
	pageSize, pageOffset int
	filters, sorts       []string
	json                 bool
}

func (l *listFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&l.pageSize, "page-size", registry.DefaultPageSize, "results per page (1-200)")
	fl.IntVar(&l.pageOffset, "page-offset", 0, "results to skip")
	fl.StringArrayVar(&l.filters, "filter", nil, `filterJson, repeatable: '{"field":"/ext/brand","value":"acme*"}'`)
	fl.StringArrayVar(&l.sorts, "sort", nil, `sortJson, repeatable: '{"field":"/id","direction":"desc"}'`)
	fl.BoolVar(&l.json, "json", false, "print the API's JSON instead of a table")
}

func (l *listFlags) query() (string, error) {
	if l.pageSize < 1 || l.pageSize > registry.MaxPageSize {
		return "", fmt.Errorf("invalid --page-size %d: must be 1 to %d", l.pageSize, registry.MaxPageSize)
	}
	if l.pageOffset < 0 {
		return "", fmt.Errorf("invalid --page-offset %d: must not be negative", l.pageOffset)
	}
	v := url.Values{}
	v.Set("pageSize", fmt.Sprint(l.pageSize))
	v.Set("pageOffset", fmt.Sprint(l.pageOffset))
	for _, f := range l.filters {
		if _, err := registry.ParseFilter(f); err != nil {
			return "", fmt.Errorf("invalid --filter: %v", strings.TrimPrefix(err.Error(), "invalid: "))
		}
		v.Add("filterJson", f)
	}
	for _, s := range l.sorts {
		if _, err := registry.ParseSort(s); err != nil {
			return "", fmt.Errorf("invalid --sort: %v", strings.TrimPrefix(err.Error(), "invalid: "))
		}
		v.Add("sortJson", s)
	}
	return "?" + v.Encode(), nil
}

// printList prints a search result as a table of the given columns (JSON
// pointers into each result), or as JSON.
func (l *listFlags) printList(cmd *cobra.Command, raw []byte, what string, cols ...string) error {
	if l.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	var res struct {
		Total  int              `json:"total"`
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("list %s: unexpected answer: %v", what, err)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range res.Result {
		cells := make([]string, len(cols))
		for i, c := range cols {
			switch v := r[c].(type) {
			case nil:
				cells[i] = "-"
			case []any:
				parts := make([]string, len(v))
				for j, p := range v {
					parts[j] = fmt.Sprint(p)
				}
				cells[i] = strings.Join(parts, ",")
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Total > len(res.Result) {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d %s shown (see --page-size, --page-offset)\n", len(res.Result), res.Total, what)
	}
	return nil
}

func newTenantCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants in a running Ferry's registry"}
	af.register(cmd)

	var body bodyFlags
	var disabled bool
	create := &cobra.Command{
		Use:   "create [TENANT]",
		Short: "Create a tenant (without TENANT, Ferry generates the id)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj, err := body.object(cmd)
			if err != nil {
				return err
			}
			if disabled {
				obj["enabled"] = false
			}
			path := "/v1/tenants"
			if len(args) == 1 {
				if !registry.ValidTenantID(args[0]) {
					return fmt.Errorf("invalid tenant id %q: letters, digits, '-', '_' and '.' only", args[0])
				}
				path += "/" + args[0]
			}
			resp, err := af.call(cmd, "create tenant", "POST", path, obj)
			if err != nil {
				return err
			}
			return printCreated(cmd, "tenant", resp.body)
		},
	}
	body.register(create, "tenant")
	create.Flags().BoolVar(&disabled, "disabled", false, "create the tenant disabled")

	get := getCmd(&af, "get TENANT", "Print a tenant as JSON", "get tenant", cobra.ExactArgs(1), "/v1/tenants")
	list := listCmd(&af, "list", "List tenants", "tenants", cobra.NoArgs, "/v1/tenants", "id", "enabled", "alias")
	del := deleteCmd(&af, "delete TENANT", "Delete a tenant with all its devices and credentials", "tenant", cobra.ExactArgs(1), "/v1/tenants",
		func(args []string) string { return "deleted tenant " + args[0] })
	cmd.AddCommand(create, get, list, del)
	return cmd
}

func printCreated(cmd *cobra.Command, what string, raw []byte) error {
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.ID == "" {
		return fmt.Errorf("create %s: unexpected answer %q", what, raw)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "created %s %s\n", what, r.ID)
	return nil
}

func newDeviceCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{Use: "device", Short: "Manage devices in a running Ferry's registry"}
	af.register(cmd)

	var body bodyFlags
	var disabled bool
	var via []string
	create := &cobra.Command{
		Use:   "create TENANT [DEVICE]",
		Short: "Register a device (without DEVICE, Ferry generates the id)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj, err := body.object(cmd)
			if err != nil {
				return err
			}
			if disabled {
				obj["enabled"] = false
			}
			if len(via) > 0 {
				obj["via"] = via
			}
			path := "/v1/devices/" + url.PathEscape(args[0])
			if len(args) == 2 {
				if !registry.ValidDeviceID(args[1]) {
					return fmt.Errorf("invalid device id %q: letters, digits, '-', '_', '.', ':' and '=' only", args[1])
				}
				path += "/" + args[1]
			}
			resp, err := af.call(cmd, "create device", "POST", path, obj)
			if err != nil {
				return err
			}
			return printCreated(cmd, "device", resp.body)
		},
	}
	body.register(create, "device")
	create.Flags().BoolVar(&disabled, "disabled", false, "register the device disabled")
	create.Flags().StringSliceVar(&via, "via", nil, "gateways that may act for the device (comma-separated device ids)")

	get := getCmd(&af, "get TENANT DEVICE", "Print a device as JSON", "get device", cobra.ExactArgs(2), "/v1/devices")
	list := listCmd(&af, "list TENANT", "List a tenant's devices", "devices", cobra.ExactArgs(1), "/v1/devices", "id", "enabled", "via")
	del := deleteCmd(&af, "delete TENANT DEVICE", "Delete a device and its credentials", "device", cobra.ExactArgs(2), "/v1/devices",
		func(args []string) string { return "deleted device " + args[1] + " of tenant " + args[0] })
	cmd.AddCommand(create, get, list, del)
	return cmd
}

func newCredentialsCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{Use: "credentials", Short: "Manage device credentials in a running Ferry's registry"}
	af.register(cmd)

	var authID, password, subjectDN, hashFunction string
	var replace bool
	set := &cobra.Command{
		Use:   "set TENANT DEVICE",
		Short: "Add or replace a device's password (--auth-id, --password) or X.509 (--subject-dn) credential",
		Long: `Add or replace one credential of a device. Its other credentials are kept,
unless --replace is given. Devices log in with a password as <auth-id>@<tenant>;
--password - reads the password from the first line of stdin.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cred map[string]any
			switch {
			case subjectDN != "" && (password != "" || authID != ""):
				return fmt.Errorf("invalid flags: --subject-dn cannot be combined with --auth-id or --password")
			case subjectDN != "":
				if hashFunction != "" {
					return fmt.Errorf("invalid flags: --hash-function is for passwords")
				}
				cred = map[string]any{"type": registry.TypeX509, "auth-id": subjectDN, "secrets": []any{map[string]any{}}}
			case authID == "" || password == "":
				return fmt.Errorf("invalid flags: give --auth-id and --password, or --subject-dn")
			default:
				pw := password
				if pw == "-" {
					line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
					if err != nil && line == "" {
						return fmt.Errorf("--password -: reading stdin: %v", err)
					}
					pw = strings.TrimRight(line, "\r\n")
				}
				secret := map[string]any{"pwd-plain": pw}
				if hashFunction != "" {
					secret["hash-function"] = hashFunction
				}
				cred = map[string]any{"type": registry.TypeHashedPassword, "auth-id": authID, "secrets": []any{secret}}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			path := apiPath("/v1/credentials", args)
			creds := []any{cred}
			etag := ""
			if !replace {
				// Keep the other credentials: what GET returns carries
				// secret ids, so the API keeps their hashes (patch mode).
				resp, err := c.do(cmd.Context(), "get credentials", "GET", path, nil, "")
				if err != nil {
					return err
				}
				var old []map[string]any
				if err := json.Unmarshal(resp.body, &old); err != nil {
					return fmt.Errorf("get credentials: unexpected answer: %v", err)
				}
				for _, o := range old {
					if o["type"] != cred["type"] || o["auth-id"] != cred["auth-id"] {
						creds = append(creds, o)
					}
				}
				etag = resp.etag
			}
			if _, err := c.do(cmd.Context(), "set credentials", "PUT", path, creds, etag); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "set %s credentials %q of device %s in tenant %s\n", cred["type"], cred["auth-id"], args[1], args[0])
			return nil
		},
	}
	fl := set.Flags()
	fl.StringVar(&authID, "auth-id", "", "auth-id of a password credential (the device logs in as <auth-id>@<tenant>)")
	fl.StringVar(&password, "password", "", "the password, stored hashed (- reads it from stdin)")
	fl.StringVar(&hashFunction, "hash-function", "", "bcrypt, sha-256 or sha-512 (default: the server's, bcrypt)")
	fl.StringVar(&subjectDN, "subject-dn", "", "subject DN of an X.509 client certificate (RFC 2253, e.g. CN=dev1,O=Acme)")
	fl.BoolVar(&replace, "replace", false, "replace all the device's credentials instead of adding or replacing one")

	get := getCmd(&af, "get TENANT DEVICE", "Print a device's credentials as JSON (without secrets)", "get credentials", cobra.ExactArgs(2), "/v1/credentials")
	cmd.AddCommand(set, get)
	return cmd
}

// call makes one request to the API that af names.
func (a *apiFlags) call(cmd *cobra.Command, action, method, path string, body any) (*apiResponse, error) {
	c, err := a.client(cmd)
	if err != nil {
		return nil, err
	}
	return c.do(cmd.Context(), action, method, path, body, "")
}

// apiPath is base followed by the escaped ids.
func apiPath(base string, ids []string) string {
	for _, id := range ids {
		base += "/" + url.PathEscape(id)
	}
	return base
}

// getCmd prints as JSON the resource under base that the arguments name.
func getCmd(af *apiFlags, use, short, action string, nargs cobra.PositionalArgs, base string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: nargs,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := af.call(cmd, action, "GET", apiPath(base, args), nil)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp.body)
		},
	}
}

// listCmd lists the resources (plural) under base and the arguments, as a
// table of cols.
func listCmd(af *apiFlags, use, short, plural string, nargs cobra.PositionalArgs, base string, cols ...string) *cobra.Command {
	var lf listFlags
	list := &cobra.Command{
		Use: use, Short: short, Args: nargs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := lf.query()
			if err != nil {
				return err
			}
			resp, err := af.call(cmd, "list "+plural, "GET", apiPath(base, args)+q, nil)
			if isNoResults(err) {
				fmt.Fprintln(cmd.ErrOrStderr(), "no "+plural)
				return nil
			}
			if err != nil {
				return err
			}
			return lf.printList(cmd, resp.body, plural, cols...)
		},
	}
	lf.register(list)
	return list
}

// deleteCmd deletes the resource (what) under base that the arguments
// name and prints done(args).
func deleteCmd(af *apiFlags, use, short, what string, nargs cobra.PositionalArgs, base string, done func(args []string) string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: nargs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := af.call(cmd, "delete "+what, "DELETE", apiPath(base, args), nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), done(args))
			return nil
		},
	}
}
