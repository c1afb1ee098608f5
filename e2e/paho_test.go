package e2e

import (
	"strings"
	"testing"
)

// TestPahoPython runs Debian's python3-paho-mqtt as a 3.1.1 and a 5.0 client.
func TestPahoPython(t *testing.T) {
	py := requirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	n := startFerry(t)
	host, port := hostPort(n)
	for _, version := range []string{"311", "5"} {
		t.Run("v"+version, func(t *testing.T) {
			out := run(t, py, "testdata/paho_client.py", host, port, version)
			if strings.TrimSpace(out) != "OK" {
				t.Errorf("paho client:\n%s", out)
			}
		})
	}
}
