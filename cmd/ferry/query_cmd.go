package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/analytics"
	"github.com/ferry-iot/ferry/internal/analytics/query"
	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/registryapi"
)

// newQueryCmd returns `ferry query`: the analytics queries of a running
// Ferry, through its /v1/analytics API.
func newQueryCmd() *cobra.Command {
	var f apiFlags
	var tenant string
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Manage streaming analytics queries (apply, list, delete, explain, tail)",
		Long: "Manage the continuous analytics queries of a running Ferry through its API (docs/analytics.md).\n" +
			"A query document is YAML: name, tenant, sql, outputs.",
	}
	f.register(cmd)
	cmd.PersistentFlags().StringVar(&tenant, "tenant", "", "tenant of the queries (default: the document's, else "+config.DefaultTenant+")")
	path := func(t, name string) string {
		if t == "" {
			t = config.DefaultTenant
		}
		p := "/v1/analytics/" + url.PathEscape(t) + "/queries"
		if name != "" {
			p += "/" + url.PathEscape(name)
		}
		return p
	}

	var file string
	apply := &cobra.Command{
		Use:   "apply -f QUERY.yaml",
		Short: "Create or replace a query from its YAML document",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw []byte
			var err error
			switch file {
			case "":
				return fmt.Errorf("give the query document with -f FILE (- for stdin)")
			case "-":
				raw, err = io.ReadAll(cmd.InOrStdin())
			default:
				raw, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("reading the query document: %w", err)
			}
			// Checked here first, so that a typo is reported with its
			// line and column before anything is sent.
			spec, err := query.DecodeSpec(raw)
			if err != nil {
				return err
			}
			if tenant != "" {
				if spec.Tenant != "" && spec.Tenant != tenant {
					return fmt.Errorf("the document is for tenant %s, --tenant says %s", spec.Tenant, tenant)
				}
				spec.Tenant = tenant
			}
			if spec.Tenant == "" {
				spec.Tenant = config.DefaultTenant
			}
			if err := spec.Validate(); err != nil {
				return err
			}
			resp, err := f.call(cmd, "apply query "+spec.Name, http.MethodPut, path(spec.Tenant, spec.Name), spec)
			if err != nil {
				return err
			}
			what := "replaced"
			if resp.status == http.StatusCreated {
				what = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "query %s %s in tenant %s\n", spec.Name, what, spec.Tenant)
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "the query document (YAML; - for stdin)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List a tenant's queries with their counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := f.call(cmd, "list queries", http.MethodGet, path(tenant, ""), nil)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.body)
			}
			var res struct {
				Result []analytics.Info `json:"result"`
			}
			if err := json.Unmarshal(resp.body, &res); err != nil {
				return fmt.Errorf("list queries: unexpected answer: %w", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATUS\tIN\tROWS\tLATE\tDROPPED\tKEYS\tWINDOWS")
			for _, q := range res.Result {
				var dropped int64
				for _, n := range q.Stats.Dropped {
					dropped += n
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", q.Name, q.Status, q.Stats.In, q.Stats.Rows, q.Stats.Late, dropped, q.Keys, q.Windows)
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a query and forget it and its state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := f.call(cmd, "delete query "+args[0], http.MethodDelete, path(tenant, args[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "query %s deleted\n", args[0])
			return nil
		},
	}

	var explainJSON bool
	explain := &cobra.Command{
		Use:   "explain NAME",
		Short: "Show a query's plan, keys, open windows, state bytes and counters",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := f.call(cmd, "explain query "+args[0], http.MethodGet, path(tenant, args[0])+"/explain", nil)
			if err != nil {
				return err
			}
			if explainJSON {
				return printJSON(cmd.OutOrStdout(), resp.body)
			}
			var e analytics.Explain
			if err := json.Unmarshal(resp.body, &e); err != nil {
				return fmt.Errorf("explain query: unexpected answer: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "query %s\nplan:\n", args[0])
			for _, l := range e.Plan {
				fmt.Fprintf(out, "  %s\n", l)
			}
			fmt.Fprintf(out, "outputs:\n")
			for _, o := range e.Outputs {
				fmt.Fprintf(out, "  %s\n", o)
			}
			fmt.Fprintf(out, "state: %d keys, %d open windows, %d bytes, %d shards (limits: %d keys, %d windows, queue %d)\n",
				e.Keys, e.OpenWindows, e.StateBytes, e.Shards, e.Limits["max_keys"], e.Limits["max_windows"], e.Limits["queue"])
			st := e.Stats
			fmt.Fprintf(out, "counters: in %d, filtered %d, late %d, parse errors %d, rows %d\n", st.In, st.Filtered, st.Late, st.ParseErrors, st.Rows)
			fmt.Fprintf(out, "dropped:")
			for _, r := range []string{"late", "future", "queue_full", "max_keys", "max_windows"} {
				fmt.Fprintf(out, " %s %d", r, st.Dropped[r])
			}
			fmt.Fprintln(out)
			fmt.Fprintf(out, "emit delay after window end + lateness: closed by a newer row: %d windows, avg %.0f ms, max %d ms; idle close: %d windows, avg %.0f ms, max %d ms\n",
				st.WatermarkCloses, st.EmitDelayAvgMs, st.EmitDelayMaxMs, st.IdleCloses, st.IdleDelayAvgMs, st.IdleDelayMaxMs)
			return nil
		},
	}
	explain.Flags().BoolVar(&explainJSON, "json", false, "print the API's JSON")

	var count int
	tail := &cobra.Command{
		Use:   "tail NAME",
		Short: "Print a query's rows as they are emitted, one JSON object a line (latest row of each key first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path(tenant, args[0])+"/stream", nil)
			if err != nil {
				return err
			}
			req.SetBasicAuth(registryapi.AdminUser, c.password)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := (&http.Client{}).Do(req) // no timeout: the stream lasts
			if err != nil {
				return fmt.Errorf("tail query %s: cannot reach the Ferry API at %s: %w", args[0], c.base, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				var p struct {
					Detail string `json:"detail"`
				}
				_ = json.Unmarshal(b, &p)
				return fmt.Errorf("tail query %s: %s: %s", args[0], resp.Status, p.Detail)
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			n := 0
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					fmt.Fprintln(cmd.OutOrStdout(), data)
					if n++; count > 0 && n >= count {
						return nil
					}
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("tail query %s: %w", args[0], err)
			}
			return fmt.Errorf("tail query %s: the stream ended (the query was deleted or Ferry stopped)", args[0])
		},
	}
	tail.Flags().IntVarP(&count, "count", "n", 0, "exit after this many rows (0: until interrupted)")

	cmd.AddCommand(apply, list, del, explain, tail)
	return cmd
}
