package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-iot/ferry/internal/console"
)

// newClientsCmd returns `ferry clients`: the connected clients of a
// running Ferry, through the web console's JSON API (docs/console.md), as
// user admin.
func newClientsCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "List and disconnect the clients connected to a running Ferry (the console's API)",
	}
	api.register(cmd)

	var tenant, query string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the connected clients: tenant, client id, device, protocol, address, subscriptions, in flight, queued",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client(cmd)
			if err != nil {
				return err
			}
			v := url.Values{}
			if tenant != "" {
				v.Set("tenant", tenant)
			}
			if query != "" {
				v.Set("q", query)
			}
			raw, err := consoleCall(cmd.Context(), c, "list clients", http.MethodGet, "/console/api/clients?"+v.Encode())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			var res struct {
				Total   int                  `json:"total"`
				Clients []console.ClientInfo `json:"clients"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("list clients: unexpected answer: %v", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tCLIENT\tDEVICE\tPROTOCOL\tADDRESS\tSUBS\tINFLIGHT\tQUEUED")
			for _, cl := range res.Clients {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%d\t%d\t%d\n", cl.Tenant, cl.ClientID, orDash(cl.Device),
					cl.Protocol, cl.Version, cl.RemoteAddr, cl.NumSubscriptions, cl.Inflight, cl.Queued+cl.SessionQueued)
			}
			if res.Total > len(res.Clients) {
				fmt.Fprintf(tw, "(%d of %d shown)\n", len(res.Clients), res.Total)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&tenant, "tenant", "", "only the clients of this tenant")
	list.Flags().StringVar(&query, "search", "", "only clients whose id, device, user or address contains this")
	list.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON instead of a table")

	var kickTenant string
	kick := &cobra.Command{
		Use:   "kick CLIENT-ID",
		Short: "Disconnect a client (MQTT 5: DISCONNECT 0x98 Administrative action); its persistent session stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := api.client(cmd)
			if err != nil {
				return err
			}
			id := args[0]
			t := kickTenant
			if t == "" {
				if t, err = tenantOfClient(cmd.Context(), c, id); err != nil {
					return err
				}
			}
			path := "/console/api/clients/" + url.PathEscape(t) + "/" + url.PathEscape(id) + "/kick"
			if _, err := consoleCall(cmd.Context(), c, "kick client", http.MethodPost, path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "disconnected client %s of tenant %s\n", id, t)
			return nil
		},
	}
	kick.Flags().StringVar(&kickTenant, "tenant", "", "the client's tenant (default: the one tenant where a client of this id is connected)")
	cmd.AddCommand(list, kick)
	return cmd
}

// tenantOfClient finds the tenant where client id is connected; an id
// connected in several tenants needs --tenant.
func tenantOfClient(ctx context.Context, c *apiClient, id string) (string, error) {
	raw, err := consoleCall(ctx, c, "kick client", http.MethodGet, "/console/api/clients?q="+url.QueryEscape(id))
	if err != nil {
		return "", err
	}
	var res struct {
		Clients []console.ClientInfo `json:"clients"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return "", fmt.Errorf("kick client: unexpected answer: %v", err)
	}
	var tenants []string
	for _, cl := range res.Clients {
		if cl.ClientID == id {
			tenants = append(tenants, cl.Tenant)
		}
	}
	switch len(tenants) {
	case 0:
		return "", fmt.Errorf("kick client: not found: no client %s is connected", id)
	case 1:
		return tenants[0], nil
	}
	return "", fmt.Errorf("kick client: client %s is connected in tenants %s: give --tenant", id, strings.Join(tenants, ", "))
}

// consoleCall sends one request to the console's API as user admin and
// returns the body of a 2xx answer.
func consoleCall(ctx context.Context, c *apiClient, action, method, path string) ([]byte, error) {
	resp, err := c.do(ctx, action, method, path, nil, "")
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound && strings.HasPrefix(path, "/console/api/clients?") {
		return nil, fmt.Errorf("%s: this Ferry serves no console API (started with --console=false?)", action)
	}
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
