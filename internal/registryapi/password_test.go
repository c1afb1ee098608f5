package registryapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateAdminPassword(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pw, path, created, err := LoadOrCreateAdminPassword(dir)
	if err != nil || !created || len(pw) < 20 || path != filepath.Join(dir, AdminPasswordFile) {
		t.Fatalf("first call = %q, %q, %v, %v", pw, path, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode: %v %v", fi.Mode(), err)
	}
	again, _, created, err := LoadOrCreateAdminPassword(dir)
	if err != nil || created || again != pw {
		t.Fatalf("second call = %q, %v, %v; want the same password", again, created, err)
	}
	// An operator may edit the file; surrounding whitespace is ignored.
	os.WriteFile(path, []byte("  chosen \n"), 0o600)
	if got, _, _, _ := LoadOrCreateAdminPassword(dir); got != "chosen" {
		t.Fatalf("edited password = %q", got)
	}
	os.WriteFile(path, []byte("\n"), 0o600)
	if _, _, _, err := LoadOrCreateAdminPassword(dir); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
	// A data directory that cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, _, _, err := LoadOrCreateAdminPassword(filepath.Join(file, "sub")); err == nil {
		t.Fatal("no error for a data directory under a file")
	}
}
