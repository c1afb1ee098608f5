package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestAppHashPassword(t *testing.T) {
	for _, tc := range []struct {
		name, stdin string
		args        []string
		wantErr     string
	}{
		{name: "argument", args: []string{"app", "hash-password", "--cost", "4", "s3cret"}},
		{name: "stdin", stdin: "s3cret\n", args: []string{"app", "hash-password", "--cost", "4"}},
		{name: "empty", stdin: "\n", args: []string{"app", "hash-password"}, wantErr: "empty"},
		{name: "bad cost", args: []string{"app", "hash-password", "--cost", "99", "x"}, wantErr: "--cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetArgs(tc.args)
			root.SetOut(&out)
			root.SetErr(&bytes.Buffer{})
			root.SetIn(strings.NewReader(tc.stdin))
			err := root.ExecuteContext(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			hash := strings.TrimSpace(out.String())
			if bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")) != nil {
				t.Fatalf("%q is not a bcrypt hash of the password", hash)
			}
		})
	}
}
