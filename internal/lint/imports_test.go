package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath   string
	Standard     bool
	Imports      []string // direct, non-test
	Deps         []string // transitive, non-test
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// A rule limits what the packages it covers may import. Paths in rules are
// relative to the module ("mqtt/packet"); a dependency outside the module
// has rel == "".
type rule struct {
	name    string
	covers  func(rel string) bool
	allowed func(rel string, dep *pkg) bool
	// tests, when set, also checks the direct imports of the package's test
	// files against this predicate instead of allowed.
	tests func(rel string) bool
}

// under reports whether rel is dir or a package inside it.
func under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// codecDeps are the module packages a codec may import besides the
// standard library. mqtt/topic counts as mqtt/packet's sibling codec: it
// is pure string checking and matching, and SUBSCRIBE decoding must reject
// exactly the filters the broker rejects, so the rules are written once.
var codecDeps = map[string][]string{
	"mqtt/packet":   {"mqtt/topic"},
	"mqtt/topic":    nil,
	"amqp/encoding": nil,
	"amqp/frame":    {"amqp/encoding"},
	// Not a codec, but imported by the engines' tests: keeping it a leaf
	// keeps those tests free of the rest of internal/.
	"internal/peertest": nil,
}

var rules = []rule{
	{
		name:   "the protocol engines (mqtt/..., amqp/...) never import internal/: they are public libraries, and their users must not get Ferry's internals or their dependencies",
		covers: func(rel string) bool { return under(rel, "mqtt", "amqp") },
		allowed: func(_ string, dep *pkg) bool {
			return !under(dep.rel(), "internal")
		},
		// Test files do not reach the engines' users, so they may share
		// internal/peertest's skip-or-fail rule; nothing else from internal/.
		tests: func(rel string) bool { return !under(rel, "internal") || rel == "internal/peertest" },
	},
	{
		name:   "codecs (mqtt/packet, mqtt/topic, amqp/encoding, amqp/frame) import only the standard library and their sibling codec, so a fuzz target needs only bytes",
		covers: func(rel string) bool { _, ok := codecDeps[rel]; return ok },
		allowed: func(rel string, dep *pkg) bool {
			return dep.Standard || slices.Contains(codecDeps[rel], dep.rel())
		},
	},
	{
		name:   "internal/hub is protocol-neutral: it imports no protocol engine (mqtt, amqp and their packages), only mqtt/topic, which is topic matching with no protocol state",
		covers: func(rel string) bool { return under(rel, "internal/hub") },
		allowed: func(_ string, dep *pkg) bool {
			r := dep.rel()
			return r == "mqtt/topic" || !under(r, "mqtt", "amqp")
		},
	},
	{
		name:   "internal/hono (Hono's wire facts) and internal/command (command routing) import only the standard library: both front ends and the northbound API share them, and they must pull in none of those",
		covers: func(rel string) bool { return rel == "internal/hono" || rel == "internal/command" },
		allowed: func(_ string, dep *pkg) bool {
			return dep.Standard
		},
	},
	{
		name:   "device front ends (internal/adapter/...) and the northbound APIs (internal/northbound/...) do not import each other: they meet in the hub and the command router, and internal/node wires them",
		covers: func(rel string) bool { return under(rel, "internal/adapter", "internal/northbound") },
		allowed: func(rel string, dep *pkg) bool {
			if under(rel, "internal/adapter") {
				return !under(dep.rel(), "internal/northbound")
			}
			return !under(dep.rel(), "internal/adapter")
		},
	},
	{
		name:   "internal/metrics imports no other Ferry package: every component may import it, so components register their own collectors (hub and cluster ones are in internal/node)",
		covers: func(rel string) bool { return rel == "internal/metrics" },
		allowed: func(_ string, dep *pkg) bool {
			return dep.rel() == ""
		},
	},
	{
		name:   "internal/store/... is the bottom layer: it imports no routing (internal/hub, internal/adapter, internal/cluster, internal/node) and no protocol engine",
		covers: func(rel string) bool { return under(rel, "internal/store") },
		allowed: func(_ string, dep *pkg) bool {
			return !under(dep.rel(), "internal/hub", "internal/adapter", "internal/cluster", "internal/node", "mqtt", "amqp")
		},
	},
}

// module is the module's path, set by TestImportRules before the rules run;
// rel uses it.
var module string

func (p *pkg) rel() string {
	if p.ImportPath == module {
		return "."
	}
	rel, ok := strings.CutPrefix(p.ImportPath, module+"/")
	if !ok {
		return ""
	}
	return rel
}

// check applies the rules to every module package in pkgs and returns one
// line per offending direct import. An import that is allowed but brings
// in something that is not is named with the first such dependency, unless
// the same rule covers it: then its own line names the culprit.
func check(pkgs map[string]*pkg) []string {
	var bad []string
	for _, p := range pkgs {
		rel := p.rel()
		if rel == "" {
			continue
		}
		for _, r := range rules {
			if !r.covers(rel) {
				continue
			}
			for _, i := range p.Imports {
				dep := pkgs[i]
				switch {
				case dep == nil:
				case !r.allowed(rel, dep):
					bad = append(bad, fmt.Sprintf("%s imports %s: %s", p.ImportPath, i, r.name))
				case !r.covers(dep.rel()):
					var via []string
					for _, d := range dep.Deps {
						if q := pkgs[d]; q != nil && !r.allowed(rel, q) {
							via = append(via, d)
						}
					}
					if len(via) == 0 {
						continue
					}
					msg := fmt.Sprintf("%s imports %s, which brings in %s", p.ImportPath, i, via[0])
					if len(via) > 1 {
						msg += fmt.Sprintf(" and %d more", len(via)-1)
					}
					bad = append(bad, msg+": "+r.name)
				}
			}
			if r.tests == nil {
				continue
			}
			for _, d := range slices.Concat(p.TestImports, p.XTestImports) {
				// Test imports are not loaded by -deps: judge the path.
				if r.tests((&pkg{ImportPath: d}).rel()) {
					continue
				}
				bad = append(bad, fmt.Sprintf("tests of %s import %s: %s", p.ImportPath, d, r.name))
			}
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

// list runs `go list -deps` on the whole module: the go command, not a
// parser of our own, decides what is imported (build tags, test files).
func list(t *testing.T) map[string]*pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}}\t{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", goErr(err))
	}
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	module = path

	cmd := exec.Command("go", "list", "-e", "-deps",
		"-json=ImportPath,Standard,Imports,Deps,TestImports,XTestImports,Error", "./...")
	cmd.Dir = dir
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", goErr(err))
	}
	pkgs := make(map[string]*pkg)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		p := new(pkg)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func goErr(err error) error {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}

// TestImportRules enforces the dependency direction of design.md section 3
// (restated in docs/internals.md, "Import rules") on the module's non-test
// code, and on the engines' tests.
func TestImportRules(t *testing.T) {
	pkgs := list(t)
	for _, want := range []string{"mqtt/packet", "amqp/frame", "internal/hub", "internal/store/pebblestore"} {
		// A renamed package would otherwise silently escape its rule.
		if pkgs[module+"/"+want] == nil {
			t.Errorf("go list did not report %s/%s: update the rules", module, want)
		}
	}
	for _, b := range check(pkgs) {
		t.Error(b)
	}
}

// TestRulesCatch feeds check a made-up graph with one violation of each
// rule, so that a rule that stopped matching (a typo in a path) shows.
func TestRulesCatch(t *testing.T) {
	saved := module
	module = "example.com/m"
	t.Cleanup(func() { module = saved })
	m := func(rel string) string { return "example.com/m/" + rel }
	pkgs := map[string]*pkg{}
	add := func(path string, std bool, imports ...string) {
		pkgs[path] = &pkg{ImportPath: path, Standard: std, Imports: imports, Deps: imports}
	}
	add("fmt", true)
	add("example.com/other", false)
	add(m("internal/metrics"), false, m("internal/hub"))
	add(m("internal/peertest"), false, "fmt")
	add(m("mqtt/topic"), false, "fmt")
	add(m("mqtt/packet"), false, "fmt", m("mqtt/topic"), "example.com/other")
	add(m("mqtt"), false, m("mqtt/packet"), m("internal/metrics"))
	add(m("amqp"), false)
	pkgs[m("amqp")].TestImports = []string{m("internal/peertest"), m("internal/metrics")}
	add(m("internal/hub"), false, m("mqtt/topic"), m("mqtt/packet"))
	pkgs[m("internal/hub")].Deps = append(pkgs[m("internal/hub")].Deps, "example.com/other")
	add(m("internal/store/x"), false, m("internal/hub"))
	add(m("internal/registry"), false, m("internal/hub"))
	pkgs[m("internal/registry")].Deps = []string{m("internal/hub"), m("mqtt/topic"), m("mqtt/packet")}
	add(m("internal/store/y"), false, m("internal/registry"))
	pkgs[m("internal/store/y")].Deps = []string{m("internal/registry"), m("internal/hub"), m("mqtt/topic"), m("mqtt/packet")}

	got := strings.Join(check(pkgs), "\n")
	for _, want := range []string{
		"example.com/m/mqtt imports example.com/m/internal/metrics: the protocol engines",
		"tests of example.com/m/amqp import example.com/m/internal/metrics",
		"example.com/m/mqtt/packet imports example.com/other: codecs",
		"example.com/m/internal/hub imports example.com/m/mqtt/packet: internal/hub is protocol-neutral",
		"example.com/m/internal/store/x imports example.com/m/internal/hub: internal/store",
		"example.com/m/internal/metrics imports example.com/m/internal/hub: internal/metrics",
		"example.com/m/internal/store/y imports example.com/m/internal/registry, which brings in example.com/m/internal/hub and 2 more: internal/store",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("check missed %q; it said:\n%s", want, got)
		}
	}
	for _, notWant := range []string{
		"imports example.com/m/mqtt/topic:",
		"import example.com/m/internal/peertest",
		"example.com/m/internal/hub imports example.com/other",
	} {
		if strings.Contains(got, notWant) {
			t.Errorf("check flagged an allowed import (%q):\n%s", notWant, got)
		}
	}
}
