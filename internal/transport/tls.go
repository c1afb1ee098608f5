package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerTLS builds the TLS configuration of a listener from PEM files.
// With clientCAFile set, client certificates are requested and verified
// against it (required when requireClientCert is set). Without it, and with
// requestClientCert, certificates are requested but left to the caller to
// verify (against per-tenant trust anchors, as device logins do).
func ServerTLS(certFile, keyFile, clientCAFile string, requireClientCert, requestClientCert bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s / key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate", clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if requireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if requireClientCert {
		return nil, errors.New("a client certificate is required but no client CA file is given")
	} else if requestClientCert {
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg, nil
}
