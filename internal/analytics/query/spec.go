package query

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Spec is a query as a user writes it: YAML with one SQL statement and its
// outputs (docs/analytics.md).
type Spec struct {
	Name    string   `yaml:"name" json:"name"`
	Tenant  string   `yaml:"tenant" json:"tenant"`
	SQL     string   `yaml:"sql" json:"sql"`
	Outputs []Output `yaml:"outputs" json:"outputs"`
	// MaxFutureSkew bounds how far past the wall clock an event time may
	// be; such rows do not move the key's watermark. Default 5m.
	MaxFutureSkew Duration `yaml:"max_future_skew,omitempty" json:"max_future_skew,omitempty"`
	// Future says what becomes of such rows: drop (counted, the
	// default) or clamp (their time is taken as the wall clock).
	Future string `yaml:"future,omitempty" json:"future,omitempty"`
	// MaxKeys bounds the keys a query holds; rows of new keys past it are
	// dropped, counted (reason max_keys) and logged. Default 100000.
	MaxKeys int `yaml:"max_keys,omitempty" json:"max_keys,omitempty"`
	// MaxWindows bounds the windows open at once over all keys (HOP panes
	// count as windows). Default 1000000.
	MaxWindows int `yaml:"max_windows,omitempty" json:"max_windows,omitempty"`
	// Queue bounds the messages waiting for the query; past it telemetry
	// is dropped and counted (reason queue_full). Default 65536.
	Queue int `yaml:"queue,omitempty" json:"queue,omitempty"`
	// DurableInput makes a telemetry or MQTT query read through a durable
	// session, as event queries always do: its QoS 1 messages are stored
	// for it and acknowledged once a checkpoint covers them, so a crash
	// loses none (QoS 0 stays at most once). Default false.
	DurableInput bool `yaml:"durable_input,omitempty" json:"durable_input,omitempty"`
	// ExactlyOnce runs a query with a Kafka source in Kafka transactions:
	// consumed offsets, the kafka outputs' rows and the state's
	// changelog commit together (docs/analytics.md). Default false.
	ExactlyOnce bool `yaml:"exactly_once,omitempty" json:"exactly_once,omitempty"`

	// Query is the parsed SQL, set by ParseSpec and Validate.
	Query *Query `yaml:"-" json:"-"`
}

// Output is one destination of a query's rows; exactly one field is set.
type Output struct {
	MQTT       *MQTTOutput       `yaml:"mqtt,omitempty" json:"mqtt,omitempty"`
	AMQP       string            `yaml:"amqp,omitempty" json:"amqp,omitempty"`
	Kafka      string            `yaml:"kafka,omitempty" json:"kafka,omitempty"`
	Prometheus *PrometheusOutput `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
}

// MQTTOutput publishes rows into the tenant's hub. Written as a plain
// topic template or as {topic, retain, qos}.
type MQTTOutput struct {
	// Topic is a template: {name} is replaced by the row's column name
	// (a group key such as {device_id}), {query} by the query's name.
	Topic  string `yaml:"topic" json:"topic"`
	Retain bool   `yaml:"retain,omitempty" json:"retain,omitempty"`
	QoS    byte   `yaml:"qos,omitempty" json:"qos,omitempty"`
}

// UnmarshalYAML takes a plain string as the topic.
func (m *MQTTOutput) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		m.Topic = n.Value
		return nil
	}
	type plain MQTTOutput
	return n.Decode((*plain)(m))
}

// PrometheusOutput exports the last row of each key as gauges.
type PrometheusOutput struct {
	// Name is the metric family; each aggregate column is a series with
	// label agg.
	Name string `yaml:"name" json:"name"`
	// Labels are the group keys that become labels. Default: all keys.
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// MaxSeries bounds the label sets; new ones past it are not exported
	// and are counted. Default 10000.
	MaxSeries int `yaml:"max_series,omitempty" json:"max_series,omitempty"`
}

// Duration is a time.Duration written as 5m or 30s.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 5m or 30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalText implements encoding.TextMarshaler (JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (JSON).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 5m or 30s", b)
	}
	*d = Duration(v)
	return nil
}

// Defaults of a Spec.
const (
	DefaultMaxFutureSkew = 5 * time.Minute
	DefaultMaxKeys       = 100_000
	DefaultMaxWindows    = 1_000_000
	DefaultQueue         = 65536
	DefaultMaxSeries     = 10_000
)

// ParseSpec reads a YAML (or JSON) query document and validates it.
// defaultTenant applies when the document names none.
func ParseSpec(data []byte, defaultTenant string) (*Spec, error) {
	s, err := DecodeSpec(data)
	if err != nil {
		return nil, err
	}
	if s.Tenant == "" {
		s.Tenant = defaultTenant
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeSpec reads a YAML (or JSON) query document without validating
// it; unknown keys are errors.
func DecodeSpec(data []byte) (*Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty query document")
		}
		return nil, fmt.Errorf("query document: %w", err)
	}
	return &s, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks the document, parses its SQL into s.Query and fills in
// the defaults.
func (s *Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	if s.Tenant == "" || strings.ContainsAny(s.Tenant, "/#+") {
		return fmt.Errorf("tenant %q: must be set and hold no '/', '#' or '+'", s.Tenant)
	}
	q, err := Parse(s.SQL)
	if err != nil {
		return fmt.Errorf("sql %w", err)
	}
	s.Query = q
	if s.MaxFutureSkew < 0 {
		return errors.New("max_future_skew must not be negative")
	}
	if s.MaxFutureSkew == 0 {
		s.MaxFutureSkew = Duration(DefaultMaxFutureSkew)
	}
	switch s.Future {
	case "":
		s.Future = "drop"
	case "drop", "clamp":
	default:
		return fmt.Errorf("future %q: use drop or clamp", s.Future)
	}
	for _, lim := range []struct {
		name string
		v    *int
		def  int
	}{{"max_keys", &s.MaxKeys, DefaultMaxKeys}, {"max_windows", &s.MaxWindows, DefaultMaxWindows}, {"queue", &s.Queue, DefaultQueue}} {
		if *lim.v < 0 {
			return fmt.Errorf("%s must not be negative", lim.name)
		}
		if *lim.v == 0 {
			*lim.v = lim.def
		}
	}
	columns := map[string]bool{"query": true}
	for _, it := range q.Select {
		columns[it.Name] = true
	}
	keys := map[string]bool{}
	for _, k := range q.Keys {
		keys[k.Text] = true
	}
	for i := range s.Outputs {
		o := &s.Outputs[i]
		n := 0
		if o.MQTT != nil {
			n++
			if err := checkTemplate(o.MQTT.Topic, columns); err != nil {
				return fmt.Errorf("outputs[%d].mqtt: %w", i, err)
			}
			if o.MQTT.QoS > 1 {
				return fmt.Errorf("outputs[%d].mqtt.qos: 0 or 1", i)
			}
		}
		if o.AMQP != "" {
			n++
			if want := "analytics/" + s.Tenant + "/"; !strings.HasPrefix(o.AMQP, want) || strings.Contains(o.AMQP[len(want):], "/") || len(o.AMQP) == len(want) {
				return fmt.Errorf("outputs[%d].amqp: %q: the address is %s<name>", i, o.AMQP, want)
			}
		}
		if o.Kafka != "" {
			n++
			if strings.ContainsAny(o.Kafka, "/ {}") || len(o.Kafka) > 249 {
				return fmt.Errorf("outputs[%d].kafka: %q is not a Kafka topic name", i, o.Kafka)
			}
		}
		if o.Prometheus != nil {
			n++
			p := o.Prometheus
			if !promNameRE.MatchString(p.Name) {
				return fmt.Errorf("outputs[%d].prometheus.name %q is not a metric name", i, p.Name)
			}
			if p.Labels == nil {
				for _, k := range q.Keys {
					p.Labels = append(p.Labels, k.Text)
				}
			}
			for _, l := range p.Labels {
				if !keys[l] {
					return fmt.Errorf("outputs[%d].prometheus.labels: %s is not a GROUP BY key", i, l)
				}
			}
			if p.MaxSeries < 0 {
				return fmt.Errorf("outputs[%d].prometheus.max_series must not be negative", i)
			}
			if p.MaxSeries == 0 {
				p.MaxSeries = DefaultMaxSeries
			}
		}
		if n != 1 {
			return fmt.Errorf("outputs[%d]: give exactly one of mqtt, amqp, kafka, prometheus", i)
		}
	}
	return nil
}

var promNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// checkTemplate checks an MQTT topic template: valid levels, and every
// {name} a column of the row.
func checkTemplate(t string, columns map[string]bool) error {
	if t == "" {
		return errors.New("empty topic")
	}
	if strings.ContainsAny(t, "#+") || strings.HasPrefix(t, "$") {
		return fmt.Errorf("topic %q: no wildcards, and not under $", t)
	}
	rest := t
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("topic %q: unclosed {", t)
		}
		name := rest[i+1 : i+j]
		if !columns[name] {
			return fmt.Errorf("topic %q: {%s} is not a column of the row", t, name)
		}
		rest = rest[i+j+1:]
	}
	return nil
}
