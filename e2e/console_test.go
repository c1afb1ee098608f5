package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-iot/ferry/internal/config"
	"github.com/ferry-iot/ferry/internal/node"
	"github.com/ferry-iot/ferry/mqtt/client"
	"github.com/ferry-iot/ferry/mqtt/packet"
)

// TestConsoleBrowser drives the web console in headless Chromium (Debian's
// chromium, through chromedp) against a running Ferry: it logs in, sees
// the connection count change when an MQTT device connects, creates a
// tenant and a device and sets its password, kicks a client, deletes a
// retained message, watches a message arrive in the topic inspector, sees
// an analytics row of the device, disables the device and sees it
// disconnected, and logs in as an application user. Screenshots of the
// overview (overview.png), the inspector, the analytics panel and the
// registry are left in the test's artifact directory: run with
// `go test -run TestConsoleBrowser -artifacts -outputdir DIR ./e2e/` to
// keep them (in a directory under DIR/_artifacts/; without -artifacts
// they go with the test's temporary directory).
func TestConsoleBrowser(t *testing.T) {
	chromium := requirePeer(t, "chromium", "chromium")
	const adminPassword = "console-test-admin"
	appHash, err := bcrypt.GenerateFromPassword([]byte("app-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	n := startFerry(t, func(c *config.Config) {
		c.Auth = true
		c.AdminPassword = adminPassword
		c.Applications = []config.Application{{Name: "acme-app", PasswordHash: string(appHash), Tenants: []string{"acme"}}}
	})
	base := "http://" + n.HTTPAddr().String() + "/console/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.WindowSize(1400, 1100),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses root
	}
	// The browser's whole life is bounded, so that a hung Chromium fails
	// the test instead of holding it until go test's timeout.
	life, cancelLife := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelLife()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// Console starts the browser, whose life is that of its context (no
	// timeout on it; each step has its own), and collects the page's
	// errors: an uncaught exception, console.error, a blocked resource
	// (Content-Security-Policy) fails the test.
	var pageErrs struct {
		sync.Mutex
		list []string
	}
	messages := chromedp.Console(browser)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				pageErrs.Lock()
				pageErrs.list = append(pageErrs.list, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				pageErrs.Unlock()
			}
		}
	}()
	defer func() { cancelBrowser(); <-consoleDone }()
	// pageErrors lists the page's errors so far, for a failure's message.
	pageErrors := func() string {
		pageErrs.Lock()
		defer pageErrs.Unlock()
		if len(pageErrs.list) == 0 {
			return ""
		}
		return "\npage errors:\n  " + strings.Join(pageErrs.list, "\n  ")
	}
	if err := chromedp.Do(browser, chromedp.Navigate(base)); err != nil {
		t.Fatalf("starting chromium (%s) and opening %s: %v", chromium, base, err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v%s", what, err, pageErrors())
		}
	}
	// until waits for a JavaScript condition on the page.
	until := func(what, expr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("waiting for %s (%s): %v%s", what, expr, err, pageErrors())
		}
	}
	// click clicks sel once it is visible, in the page itself: the lists
	// are rendered again as they reload, and a node found by one protocol
	// call may be gone by the next.
	click := func(what, sel string) {
		t.Helper()
		until(what, fmt.Sprintf("(e => !!e && e.offsetParent !== null && (e.click(), true))(document.querySelector(%s))", strconv.Quote(sel)))
	}
	text := func(sel string) string {
		return fmt.Sprintf("((document.querySelector(%s)||{}).textContent||'')", strconv.Quote(sel))
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// screenshot leaves a picture of the page in the artifact directory,
	// for a person to look at.
	screenshot := func(name string) {
		t.Helper()
		shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(t.ArtifactDir(), name+".png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s screenshot: %s", name, path)
	}

	step("log in",
		chromedp.WaitVisible(css("#login-password")),
		chromedp.SendKeys(css("#login-password"), adminPassword),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#app")),
	)
	until("the overview's first sample", text("#stat-connections")+" === '0'")

	step("create tenant acme",
		chromedp.Click(css("#nav-registry")),
		chromedp.WaitVisible(css("#tenant-new-id")),
		chromedp.SendKeys(css("#tenant-new-id"), "acme"),
		chromedp.Click(css("#tenant-create")),
		chromedp.WaitVisible(css(`#tenants-table tr[data-tenant="acme"]`)),
	)
	until("tenant acme selected", "document.querySelector('#tenant-select').value === 'acme'")
	step("create device dev-1 and set its password",
		chromedp.SendKeys(css("#device-new-id"), "dev-1"),
		chromedp.Click(css("#device-create")),
		chromedp.WaitVisible(css(`#devices-table tr[data-device="dev-1"]`)),
		chromedp.SetValue(css("#cred-device"), "dev-1"),
		chromedp.SendKeys(css("#cred-authid"), "sensor-1"),
		chromedp.SendKeys(css("#cred-password"), "device-secret"),
		chromedp.Click(css("#cred-set")),
	)
	until("the credentials shown", text("#cred-list")+".includes('sensor-1')")

	// The device connects: the overview counts it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := client.Connect(ctx, client.Options{
		Server: "tcp://" + n.MQTTAddr().String(), ClientID: "console-dev", Version: packet.V5, CleanStart: true,
		Username: "sensor-1@acme", Password: []byte("device-secret"),
	})
	if err != nil {
		t.Fatalf("device login: %v", err)
	}
	defer dev.Close()
	step("open the overview", chromedp.Click(css("#nav-overview")))
	until("one connection on the overview", text("#stat-connections")+" === '1'")
	step("see the client",
		chromedp.Click(css("#nav-clients")),
		chromedp.WaitVisible(css(`#clients-table tr[data-client="console-dev"]`)),
	)

	// A second connection is kicked from its details: MQTT 5 DISCONNECT
	// 0x98 (Administrative action).
	kicked, err := client.Connect(ctx, client.Options{
		Server: "tcp://" + n.MQTTAddr().String(), ClientID: "kick-me", Version: packet.V5, CleanStart: true,
		Username: "sensor-1@acme", Password: []byte("device-secret"),
	})
	if err != nil {
		t.Fatalf("second login: %v", err)
	}
	defer kicked.Close()
	click("kick-me's details", `#clients-table tr[data-client="kick-me"] button`)
	click("kick", "#client-kick")
	until("the kick armed", text("#client-kick")+".startsWith('Click again')")
	click("kick, really", "#client-kick")
	select {
	case <-kicked.Done():
		var re *client.ReasonError
		if err := kicked.Err(); !errors.As(err, &re) || re.Code != packet.AdministrativeAction {
			t.Errorf("kick-me ended with %v, want DISCONNECT 0x98", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("kick-me is still connected")
	}

	// A retained message is deleted from the retained page.
	if err := dev.Publish(ctx, &client.Message{Topic: "sensors/kitchen/state", Payload: []byte("ok"), QoS: 1, Retain: true}); err != nil {
		t.Fatalf("publish retained: %v", err)
	}
	row := `#retained-table tr[data-topic="sensors/kitchen/state"]`
	step("open the retained messages", chromedp.Click(css("#nav-retained")))
	click("delete the retained message", row+" button.delete")
	until("the delete armed", text(row+" button.delete")+".startsWith('Click again')")
	click("delete it, really", row+" button.delete")
	until("the retained message gone", "!document.querySelector('"+row+"')")
	if r := n.Hub().Retained("acme", "#", 0); len(r) != 0 {
		t.Errorf("retained messages left: %v", r)
	}

	// The topic inspector shows what the device publishes.
	step("watch sensors/# in the inspector",
		chromedp.Click(css("#nav-inspector")),
		chromedp.WaitVisible(css("#inspect-filter")),
		chromedp.SetValue(css("#inspect-filter"), "sensors/#"),
		chromedp.Click(css("#inspect-start")),
	)
	until("the inspector subscribed", text("#inspect-state")+".startsWith('watching sensors/#')")
	if err := dev.Publish(ctx, &client.Message{Topic: "sensors/kitchen/temp", Payload: []byte("21.5"), QoS: 1}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	until("the message in the inspector", text("#inspect-messages")+".includes('sensors/kitchen/temp') && "+
		text("#inspect-messages")+".includes('21.5')")
	screenshot("inspector")

	// An analytics query of the tenant: the panel shows up, with the row of
	// the device's window.
	applyConsoleQuery(t, n.HTTPAddr().String(), adminPassword)
	step("open the analytics panel",
		chromedp.Click(css("#nav-overview")),
		chromedp.WaitVisible(css("#nav-analytics")),
		chromedp.Click(css("#nav-analytics")),
		chromedp.WaitVisible(css("#analytics-key")),
	)
	until("the query listed", "[...document.querySelectorAll('#analytics-query option')].some(o => o.value === 'temp')")
	step("show dev-1's rows",
		chromedp.SetValue(css("#analytics-query"), "temp"),
		chromedp.SendKeys(css("#analytics-key"), "dev-1"),
		chromedp.Click(css("#analytics-show")),
	)
	// One reading in a past window, and one 30 s later that closes it.
	t0 := time.Now().Add(-time.Minute).Truncate(10 * time.Second)
	for _, r := range []struct {
		at   time.Time
		temp float64
	}{{t0, 21.5}, {t0.Add(30 * time.Second), 0}} {
		payload := fmt.Sprintf(`{"ts":%d,"temp":%g}`, r.at.UnixMilli(), r.temp)
		if err := dev.Publish(ctx, &client.Message{Topic: "telemetry", Payload: []byte(payload), QoS: 1}); err != nil {
			t.Fatalf("telemetry: %v", err)
		}
	}
	until("dev-1's row in the analytics panel", text("#analytics-table tbody")+".includes('dev-1') && "+
		text("#analytics-table tbody")+".includes('21.5')")
	screenshot("analytics")

	// Disabling the device closes its connection.
	step("open the registry", chromedp.Click(css("#nav-registry")))
	click("disable dev-1", `#devices-table tr[data-device="dev-1"] button.toggle`)
	until("dev-1 shown disabled", text(`#devices-table tr[data-device="dev-1"]`)+".includes('disabled')")
	screenshot("registry")
	select {
	case <-dev.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the disabled device is still connected")
	}
	step("back to the overview", chromedp.Click(css("#nav-overview")))
	until("no connection on the overview", text("#stat-connections")+" === '0'")

	screenshot("overview")

	// An application user sees its tenant only, without the hub-wide
	// figures.
	step("log out and in as application acme-app",
		chromedp.Click(css("#logout")),
		chromedp.WaitVisible(css("#login-user")),
		chromedp.SetValue(css("#login-user"), "acme-app"),
		chromedp.SendKeys(css("#login-password"), "app-secret"),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#app")),
	)
	until("acme-app's tenants", "[...document.querySelectorAll('#tenant-select option')].map(o => o.value).join() === 'acme'")
	until("its tenant's figures, no hub-wide ones", "document.querySelector('#plot-store').hidden && "+
		"!document.querySelector('#hubwide-note').hidden && "+text("#label-in")+" === 'published/s'")

	if errs := pageErrors(); errs != "" {
		t.Error(errs)
	}
}

// TestConsoleShutdown checks that open event streams (live figures, topic
// inspector) do not hold up a node's shutdown, and that --console=false
// turns the console off alone.
func TestConsoleShutdown(t *testing.T) {
	cfg := config.Default()
	cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.AMQP.Addr, cfg.AMQP.AppAddr = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.MQTT.SysInterval = 0
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "pw"
	n, err := node.Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.HTTPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var bodies []io.ReadCloser
	for _, path := range []string{"/console/api/live", "/console/api/inspect?filter=%23"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		bodies = append(bodies, resp.Body)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	start := time.Now()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with open console streams: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	for _, b := range bodies {
		// The streams ended with the server.
		if _, err := io.Copy(io.Discard, b); err != nil {
			t.Logf("stream: %v", err)
		}
		b.Close()
	}

	off := startFerry(t, func(c *config.Config) { c.HTTP.Console = false })
	resp, err := http.Get("http://" + off.HTTPAddr().String() + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /console/ with the console off: %s", resp.Status)
	}
}

// applyConsoleQuery applies the analytics query "temp" of tenant acme
// through the node's analytics API (issue #17): the average temperature of
// each device per 10 s window of the devices' own time stamps.
func applyConsoleQuery(t *testing.T, httpAddr, adminPassword string) {
	t.Helper()
	doc := `sql: |
  SELECT device_id, avg(temp) AS avg, count(*) AS n
  FROM telemetry
  WHERE temp IS NOT NULL
  GROUP BY device_id, TUMBLE(10s)
  TIME BY ts
`
	req, err := http.NewRequest(http.MethodPut, "http://"+httpAddr+"/v1/analytics/acme/queries/temp", strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("PUT the analytics query: %s %s", resp.Status, b)
	}
}

// TestConsoleCLI runs `ferry clients list` and `ferry clients kick`
// against a running node.
func TestConsoleCLI(t *testing.T) {
	n := startFerry(t, func(c *config.Config) { c.AdminPassword = "cli-pw" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Server: "tcp://" + n.MQTTAddr().String(), ClientID: "cli-dev", Version: packet.V5, CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	api := []string{"--api-url", "http://" + n.HTTPAddr().String(), "--admin-password", "cli-pw"}
	out := run(t, ferryBinary(t), append([]string{"clients", "list"}, api...)...)
	if !strings.Contains(out, "DEFAULT_TENANT") || !strings.Contains(out, "cli-dev") || !strings.Contains(out, "mqtt 5.0") {
		t.Fatalf("ferry clients list:\n%s", out)
	}
	out = run(t, ferryBinary(t), append([]string{"clients", "kick", "cli-dev"}, api...)...)
	if !strings.Contains(out, "disconnected client cli-dev of tenant DEFAULT_TENANT") {
		t.Fatalf("ferry clients kick: %s", out)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("cli-dev is still connected")
	}
}
