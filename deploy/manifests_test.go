// Package deploy holds the Kubernetes manifests; its test parses every
// manifest and checks the fields that must agree with the binary.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-iot/ferry/internal/config"
)

type object = map[string]any

func loadManifests(t *testing.T) map[string][]object {
	t.Helper()
	byKind := map[string][]object{}
	files, _ := filepath.Glob("kubernetes/*/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests found")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o == nil {
				continue
			}
			for _, k := range []string{"apiVersion", "kind", "metadata"} {
				if o[k] == nil {
					t.Errorf("%s: object without %s", f, k)
				}
			}
			kind, _ := o["kind"].(string)
			byKind[kind] = append(byKind[kind], o)
		}
	}
	return byKind
}

// get walks a path of map keys and list indexes ("spec.ports.0.name").
func get(o any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch v := o.(type) {
		case map[string]any:
			o = v[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(v) {
				return nil
			}
			o = v[i]
		default:
			return nil
		}
	}
	return o
}

func TestEmbeddedStatefulSet(t *testing.T) {
	m := loadManifests(t)
	if len(m["StatefulSet"]) != 1 {
		t.Fatalf("want one StatefulSet, got %d", len(m["StatefulSet"]))
	}
	sts := m["StatefulSet"][0]
	c := get(sts, "spec.template.spec.containers.0")
	if img, _ := get(c, "image").(string); !strings.HasPrefix(img, "ghcr.io/ferry-iot/ferry:") {
		t.Errorf("image = %q", img)
	}
	ports := map[string]int{}
	for _, p := range get(c, "ports").([]any) {
		ports[get(p, "name").(string)] = get(p, "containerPort").(int)
	}
	if ports["mqtt"] != 1883 || ports["http"] != 8080 {
		t.Errorf("container ports = %v, want mqtt 1883 and http 8080", ports)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := get(c, probe+".httpGet.path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
		if got := get(c, probe+".httpGet.port"); got != "http" {
			t.Errorf("%s port = %v, want the http port", probe, got)
		}
	}

	// Every mount has a volume or a claim template, and the data volume is
	// where the config puts data_dir.
	volumes := []string{}
	for _, v := range get(sts, "spec.template.spec.volumes").([]any) {
		volumes = append(volumes, get(v, "name").(string))
	}
	for _, v := range get(sts, "spec.volumeClaimTemplates").([]any) {
		volumes = append(volumes, get(v, "metadata.name").(string))
	}
	mounts := map[string]string{}
	for _, vm := range get(c, "volumeMounts").([]any) {
		name := get(vm, "name").(string)
		mounts[name] = get(vm, "mountPath").(string)
		if !slices.Contains(volumes, name) {
			t.Errorf("volume mount %q has no volume", name)
		}
	}

	// The ConfigMap's ferry.yaml is a valid configuration whose ports and
	// data directory match the pod.
	if len(m["ConfigMap"]) != 1 {
		t.Fatalf("want one ConfigMap, got %d", len(m["ConfigMap"]))
	}
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	os.WriteFile(path, []byte(get(m["ConfigMap"][0], "data").(map[string]any)["ferry.yaml"].(string)), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("ConfigMap ferry.yaml: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ConfigMap ferry.yaml: %v", err)
	}
	if cfg.DataDir != mounts["data"] {
		t.Errorf("data_dir %q is not the data volume's mount %q", cfg.DataDir, mounts["data"])
	}
	if !strings.HasSuffix(cfg.MQTT.Addr, ":1883") || !strings.HasSuffix(cfg.HTTP.Addr, ":8080") {
		t.Errorf("config listens on %s and %s, pod ports are 1883 and 8080", cfg.MQTT.Addr, cfg.HTTP.Addr)
	}
	args := get(c, "args").([]any)
	if !slices.Contains(args, any("--config")) || mounts["config"] == "" || !strings.HasPrefix(args[len(args)-1].(string), mounts["config"]) {
		t.Errorf("args %v do not read the config from the config mount %q", args, mounts["config"])
	}

	// Services target the named container ports.
	for _, svc := range m["Service"] {
		for _, p := range get(svc, "spec.ports").([]any) {
			if tp, _ := get(p, "targetPort").(string); ports[tp] == 0 {
				t.Errorf("service %v targets unknown port %v", get(svc, "metadata.name"), tp)
			}
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{"AS build", "CGO_ENABLED=0", "USER 65532", "EXPOSE 1883 8080", "--mqtt-addr", "--http-addr"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
