// Package deploy holds the Kubernetes manifests; its test parses every
// manifest and checks the fields that must agree with the binary.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-iot/ferry/internal/config"
)

type object = map[string]any

// loadManifests parses the manifests of one example directory under
// kubernetes/, by kind.
func loadManifests(t *testing.T, dir string) map[string][]object {
	t.Helper()
	byKind := map[string][]object{}
	files, _ := filepath.Glob(filepath.Join("kubernetes", dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/%s", dir)
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
func get(o any, path string) any { return at(o, strings.Split(path, ".")...) }

// at walks keys that may contain dots ("data", "ferry.yaml").
func at(o any, keys ...string) any {
	for _, p := range keys {
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

func TestExamplesParse(t *testing.T) {
	dirs, _ := filepath.Glob("kubernetes/*")
	if len(dirs) < 2 {
		t.Fatalf("examples: %v, want embedded and scale-out", dirs)
	}
	for _, d := range dirs {
		loadManifests(t, filepath.Base(d))
	}
}

func TestEmbeddedStatefulSet(t *testing.T) {
	m := loadManifests(t, "embedded")
	if len(m["StatefulSet"]) != 1 {
		t.Fatalf("want one StatefulSet, got %d", len(m["StatefulSet"]))
	}
	sts := m["StatefulSet"][0]
	volumes := names(get(sts, "spec.template.spec.volumes"), "name")
	volumes = append(volumes, names(get(sts, "spec.volumeClaimTemplates"), "metadata.name")...)
	cfg, ports, mounts := checkFerryPod(t, get(sts, "spec.template.spec"), volumes, m["ConfigMap"])
	if cfg.ScaleOut() {
		t.Error("the embedded example configures the scale-out mode")
	}
	if cfg.DataDir != mounts["data"] {
		t.Errorf("data_dir %q is not the data volume's mount %q", cfg.DataDir, mounts["data"])
	}
	checkServices(t, m["Service"], ports)
}

func TestScaleOut(t *testing.T) {
	m := loadManifests(t, "scale-out")
	var dep object
	for _, d := range m["Deployment"] {
		if get(d, "metadata.name") == "ferry" {
			dep = d
		}
	}
	if dep == nil {
		t.Fatal("no Deployment ferry")
	}
	if r, _ := get(dep, "spec.replicas").(int); r < 2 {
		t.Errorf("replicas = %d, want several nodes", r)
	}
	pod := get(dep, "spec.template.spec")
	cfg, ports, _ := checkFerryPod(t, pod, names(get(pod, "volumes"), "name"), m["ConfigMap"])
	checkServices(t, m["Service"], ports)

	// The environment completes the config: node id from the pod name, the
	// registry DSN and admin password from a Secret that exists.
	secrets := map[string]map[string]any{}
	for _, s := range m["Secret"] {
		secrets[get(s, "metadata.name").(string)], _ = get(s, "stringData").(map[string]any)
	}
	env := map[string]any{}
	for _, e := range get(pod, "containers.0.env").([]any) {
		env[get(e, "name").(string)] = get(e, "valueFrom")
	}
	if got := get(env["FERRY_NODE_ID"], "fieldRef.fieldPath"); got != "metadata.name" {
		t.Errorf("FERRY_NODE_ID from %v, want the pod name", got)
	}
	dsn := ""
	for _, name := range []string{"FERRY_POSTGRES_DSN", "FERRY_ADMIN_PASSWORD"} {
		ref := get(env[name], "secretKeyRef")
		sec, key := get(ref, "name"), get(ref, "key")
		v, ok := secrets[fmt.Sprint(sec)][fmt.Sprint(key)].(string)
		if !ok {
			t.Errorf("%s: secret %v has no key %v", name, sec, key)
		}
		if name == "FERRY_POSTGRES_DSN" {
			dsn = v
		} else {
			cfg.AdminPassword = v
		}
	}
	cfg.Registry.PostgresDSN = dsn
	if err := cfg.Validate(); err != nil || !cfg.ScaleOut() {
		t.Fatalf("scale-out config with the Secret's DSN: scale-out %v, %v", cfg.ScaleOut(), err)
	}
	// The example database's Secret and the DSN agree.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	pg := secrets["ferry-postgres"]
	if u.User.Username() != pg["POSTGRES_USER"] || pw != pg["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != pg["POSTGRES_DB"] {
		t.Errorf("DSN %s does not match the ferry-postgres Secret %v", dsn, pg)
	}
	if host := u.Hostname(); !hasService(m["Service"], host) {
		t.Errorf("DSN host %q is not a Service of the example", host)
	}

	// Kafka: the brokers are the bootstrap Service of the Strimzi cluster's
	// plain listener, and both topics exist with the right policy.
	if len(m["Kafka"]) != 1 {
		t.Fatalf("want one Kafka, got %d", len(m["Kafka"]))
	}
	kafka := m["Kafka"][0]
	cluster := get(kafka, "metadata.name").(string)
	listenerPort := 0
	for _, l := range get(kafka, "spec.kafka.listeners").([]any) {
		if get(l, "tls") == false {
			listenerPort = get(l, "port").(int)
		}
	}
	want := fmt.Sprintf("%s-kafka-bootstrap:%d", cluster, listenerPort)
	if !slices.Equal(cfg.Cluster.Kafka.Brokers, []string{want}) {
		t.Errorf("brokers %v, want the Strimzi bootstrap service %s", cfg.Cluster.Kafka.Brokers, want)
	}
	pools := 0
	for _, p := range m["KafkaNodePool"] {
		if at(p, "metadata", "labels", "strimzi.io/cluster") == cluster {
			pools++
		}
	}
	if pools == 0 {
		t.Errorf("no KafkaNodePool for cluster %s", cluster)
	}
	topics := map[string]object{}
	for _, kt := range m["KafkaTopic"] {
		name := get(kt, "metadata.name").(string)
		if n, ok := get(kt, "spec.topicName").(string); ok {
			name = n
		}
		if at(kt, "metadata", "labels", "strimzi.io/cluster") != cluster {
			t.Errorf("KafkaTopic %s is not labelled for cluster %s", name, cluster)
		}
		topics[name] = kt
	}
	if topics[cfg.Cluster.Kafka.Topic] == nil {
		t.Errorf("no KafkaTopic %s", cfg.Cluster.Kafka.Topic)
	}
	if rt := topics[cfg.Cluster.Kafka.RetainedTopic]; rt == nil || at(rt, "spec", "config", "cleanup.policy") != "compact" {
		t.Errorf("KafkaTopic %s missing or not compacted", cfg.Cluster.Kafka.RetainedTopic)
	}
}

// checkFerryPod checks a pod spec running Ferry: image, ports, probes,
// mounts, and the ConfigMap it reads its configuration from, which it
// returns loaded, with the container ports and the mounts.
func checkFerryPod(t *testing.T, pod any, volumes []string, configMaps []object) (config.Config, map[string]int, map[string]string) {
	t.Helper()
	c := get(pod, "containers.0")
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
	// Every mount has a volume; the root file system is read-only, so the
	// data directory must be a mount.
	mounts := map[string]string{}
	for _, vm := range get(c, "volumeMounts").([]any) {
		name := get(vm, "name").(string)
		mounts[name] = get(vm, "mountPath").(string)
		if !slices.Contains(volumes, name) {
			t.Errorf("volume mount %q has no volume", name)
		}
	}

	// The config volume's ConfigMap holds a valid ferry.yaml whose ports
	// and data directory match the pod.
	var cmName any
	for _, v := range get(pod, "volumes").([]any) {
		if get(v, "name") == "config" {
			cmName = get(v, "configMap.name")
		}
	}
	var data string
	for _, cm := range configMaps {
		if get(cm, "metadata.name") == cmName {
			data, _ = at(cm, "data", "ferry.yaml").(string)
		}
	}
	if data == "" {
		t.Fatalf("config volume: no ConfigMap %v with ferry.yaml", cmName)
	}
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("ConfigMap ferry.yaml: %v", err)
	}
	if !cfg.ScaleOut() {
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ConfigMap ferry.yaml: %v", err)
		}
	}
	dataMounted := false
	for _, m := range mounts {
		dataMounted = dataMounted || m == cfg.DataDir
	}
	if !dataMounted {
		t.Errorf("data_dir %q is not a mount (the root file system is read-only)", cfg.DataDir)
	}
	if !strings.HasSuffix(cfg.MQTT.Addr, ":1883") || !strings.HasSuffix(cfg.HTTP.Addr, ":8080") {
		t.Errorf("config listens on %s and %s, pod ports are 1883 and 8080", cfg.MQTT.Addr, cfg.HTTP.Addr)
	}
	args := get(c, "args").([]any)
	if !slices.Contains(args, any("--config")) || mounts["config"] == "" || !strings.HasPrefix(args[len(args)-1].(string), mounts["config"]) {
		t.Errorf("args %v do not read the config from the config mount %q", args, mounts["config"])
	}
	return cfg, ports, mounts
}

// checkServices checks that Services target named container ports.
func checkServices(t *testing.T, services []object, ports map[string]int) {
	t.Helper()
	for _, svc := range services {
		if get(svc, "metadata.name") == "ferry-postgres" {
			continue
		}
		for _, p := range get(svc, "spec.ports").([]any) {
			if tp, _ := get(p, "targetPort").(string); ports[tp] == 0 {
				t.Errorf("service %v targets unknown port %v", get(svc, "metadata.name"), tp)
			}
		}
	}
}

func hasService(services []object, name string) bool {
	for _, s := range services {
		if get(s, "metadata.name") == name {
			return true
		}
	}
	return false
}

// names collects the string at path of each element of list.
func names(list any, path string) []string {
	var out []string
	l, _ := list.([]any)
	for _, e := range l {
		if s, ok := get(e, path).(string); ok {
			out = append(out, s)
		}
	}
	return out
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
