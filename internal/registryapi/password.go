package registryapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminPasswordFile is the name of the generated admin password file in the
// data directory.
const AdminPasswordFile = "admin-password"

// LoadOrCreateAdminPassword returns the admin password kept in dataDir,
// generating one (128 random bits, URL-safe Base64) on first use. path is
// the file's location, to tell the operator where to find it; created
// reports whether this call generated it.
//
// The file is created with O_EXCL and mode 0600, so two processes starting
// at once agree on one password and other users cannot read it. A file
// that exists but is empty is an error rather than an empty password,
// which would leave the API closed without saying why.
func LoadOrCreateAdminPassword(dataDir string) (password, path string, created bool, err error) {
	path = filepath.Join(dataDir, AdminPasswordFile)
	if pw, err := readPassword(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pw, path, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("admin password: %w", err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process won the race; use its password.
		pw, err := readPassword(path)
		return pw, path, false, err
	}
	if err != nil {
		return "", path, false, fmt.Errorf("admin password: %w", err)
	}
	_, werr := f.WriteString(pw + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return "", path, false, fmt.Errorf("admin password: writing %s: %w", path, err)
	}
	return pw, path, true, nil
}

func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("admin password: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("admin password: %s is empty; delete it to generate a new password", path)
	}
	return pw, nil
}
