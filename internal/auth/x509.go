package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// TrustStore is what certificate logins need of the device registry;
// *registry.Registry is one.
type TrustStore interface {
	TenantsByTrustedCA(ctx context.Context, subjectDN string) ([]string, error)
	GetTenant(ctx context.Context, id string) (registry.Tenant, string, error)
	ResolveCredentials(ctx context.Context, tenant, typ, authID string) (registry.Resolved, error)
}

// CertLogin authenticates devices by their TLS client certificate, as Hono
// does: the certificate's issuer must be a trusted CA of a tenant (its
// signature checked with that CA's public key, both within their validity),
// and the tenant must have an x509-cert credential whose auth-id is the
// certificate's subject DN (RFC 2253).
type CertLogin struct {
	Trust TrustStore
	// Now is the clock, for tests. If nil, time.Now.
	Now func() time.Time
}

// Authenticate checks the client certificate chain of a TLS connection
// (leaf first). Errors wrap registry.ErrBadCredentials or
// registry.ErrDisabled.
func (l *CertLogin) Authenticate(ctx context.Context, chain []*x509.Certificate) (registry.Identity, error) {
	if len(chain) == 0 {
		return registry.Identity{}, fmt.Errorf("%w: no client certificate", registry.ErrBadCredentials)
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	cert := chain[0]
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return registry.Identity{}, fmt.Errorf("%w: client certificate not valid now", registry.ErrBadCredentials)
	}
	issuer := cert.Issuer.String()
	tenants, err := l.Trust.TenantsByTrustedCA(ctx, issuer)
	if err != nil {
		return registry.Identity{}, err
	}
	subject := cert.Subject.String()
	var firstErr error
	for _, tenant := range tenants {
		t, _, err := l.Trust.GetTenant(ctx, tenant)
		if err != nil {
			continue
		}
		if !signedByTrustedCA(cert, t.TrustedCAs, issuer, now) {
			continue
		}
		res, err := l.Trust.ResolveCredentials(ctx, tenant, registry.TypeX509, subject)
		if err == nil {
			return res.Identity, nil
		}
		if errors.Is(err, registry.ErrDisabled) {
			return res.Identity, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return registry.Identity{}, firstErr
	}
	return registry.Identity{}, fmt.Errorf("%w: no tenant trusts issuer %q of %q", registry.ErrBadCredentials, issuer, subject)
}

func signedByTrustedCA(cert *x509.Certificate, cas []registry.TrustedCA, issuer string, now time.Time) bool {
	for _, ca := range cas {
		if ca.SubjectDN != issuer || len(ca.PublicKey) == 0 {
			continue
		}
		if (!ca.NotBefore.IsZero() && now.Before(ca.NotBefore)) || (!ca.NotAfter.IsZero() && now.After(ca.NotAfter)) {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(ca.PublicKey)
		if err != nil {
			continue
		}
		// CheckSignatureFrom wants a CA certificate; the registry keeps
		// the key, which is all the signature check uses.
		parent := &x509.Certificate{
			Version: 3, BasicConstraintsValid: true, IsCA: true,
			PublicKey: pub, PublicKeyAlgorithm: keyAlgorithm(pub), RawSubject: cert.RawIssuer,
		}
		if cert.CheckSignatureFrom(parent) == nil {
			return true
		}
	}
	return false
}

func keyAlgorithm(pub any) x509.PublicKeyAlgorithm {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.RSA
	case *ecdsa.PublicKey:
		return x509.ECDSA
	case ed25519.PublicKey:
		return x509.Ed25519
	}
	return x509.UnknownPublicKeyAlgorithm
}
