package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// TypeRPK is a raw public key credential: its secrets hold a public key
// (key, DER SubjectPublicKeyInfo, Base64 in JSON) and its algorithm (RSA
// or EC), against which the device's JSON Web Tokens are checked (Hono
// 2.x's JWT logins).
const TypeRPK = "rpk"

// JWT algorithms of rpk secrets.
const (
	AlgorithmRSA = "RSA"
	AlgorithmEC  = "EC"
)

// MaxJWTLifetime bounds exp - iat of a device's token, as Google IoT
// Core (whose devices Hono's JWT logins are for) did.
const MaxJWTLifetime = 24 * time.Hour

// checkRPK validates the key of an rpk secret.
func checkRPK(s *Secret) error {
	if len(s.Cert) > 0 {
		if err := rpkFromCert(s); err != nil {
			return err
		}
	}
	if s.ID != "" && len(s.Key) == 0 {
		return nil // a reference to a stored secret (patch mode)
	}
	if len(s.Key) == 0 {
		return errors.New("a new rpk secret needs a key (DER public key, Base64)")
	}
	pub, err := x509.ParsePKIXPublicKey(s.Key)
	if err != nil {
		return fmt.Errorf("key: not a DER public key: %v", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		if s.Algorithm != AlgorithmRSA {
			return fmt.Errorf("key is an RSA key: algorithm must be %s, not %q", AlgorithmRSA, s.Algorithm)
		}
	case *ecdsa.PublicKey:
		if s.Algorithm != AlgorithmEC {
			return fmt.Errorf("key is an EC key: algorithm must be %s, not %q", AlgorithmEC, s.Algorithm)
		}
	default:
		return fmt.Errorf("key: %T keys are not supported (RSA or EC)", pub)
	}
	return nil
}

// rpkFromCert replaces a secret's cert by its public key, algorithm and
// validity; a key, algorithm or validity given beside it must agree.
func rpkFromCert(s *Secret) error {
	cert, err := x509.ParseCertificate(s.Cert)
	if err != nil {
		return fmt.Errorf("cert: not a DER certificate: %v", err)
	}
	if len(s.Key) > 0 && !bytes.Equal(s.Key, cert.RawSubjectPublicKeyInfo) {
		return errors.New("key differs from the public key of cert: give one of them")
	}
	alg := ""
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey:
		alg = AlgorithmRSA
	case *ecdsa.PublicKey:
		alg = AlgorithmEC
	default:
		return fmt.Errorf("cert: %T keys are not supported (RSA or EC)", cert.PublicKey)
	}
	if s.Algorithm != "" && s.Algorithm != alg {
		return fmt.Errorf("cert holds an %s key: algorithm must be %s, not %q", alg, alg, s.Algorithm)
	}
	s.Key, s.Algorithm, s.Cert = cert.RawSubjectPublicKeyInfo, alg, nil
	if s.NotBefore.IsZero() {
		s.NotBefore = cert.NotBefore
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = cert.NotAfter
	}
	return nil
}

// AuthenticateJWT checks a device's JSON Web Token against the public
// keys of its rpk credential (tenant, authID): the signature (RS256/384/512
// or ES256/384/512), and iat and exp, both required, with exp after now,
// iat not in the future (30 s of clock skew allowed) and exp-iat at most
// MaxJWTLifetime. Errors are ErrBadCredentials or, for a disabled tenant,
// device or credential, ErrDisabled.
func (r *Registry) AuthenticateJWT(ctx context.Context, tenant, authID, token string) (Identity, error) {
	res, err := r.resolve(ctx, tenant, TypeRPK, authID)
	if err != nil {
		return Identity{}, err
	}
	now := r.opts.Now()
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: tenant %q, auth-id %q: %s", ErrBadCredentials, tenant, authID, why)
	}
	claims, verify, err := parseJWT(token)
	if err != nil {
		return bad(err.Error())
	}
	ok := false
	for i := range res.Credential.Secrets {
		s := &res.Credential.Secrets[i]
		if !s.ValidAt(now) {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(s.Key)
		if err == nil && verify(pub) {
			ok = true
			break
		}
	}
	if !ok {
		return bad("signature not verified by any valid key")
	}
	if claims.IAT == nil || claims.EXP == nil {
		return bad("iat and exp are required")
	}
	iat, exp := time.Unix(*claims.IAT, 0), time.Unix(*claims.EXP, 0)
	switch {
	case !now.Before(exp):
		return bad("expired")
	case iat.After(now.Add(30 * time.Second)):
		return bad("issued in the future")
	case exp.Sub(iat) > MaxJWTLifetime:
		return bad("lifetime longer than 24h")
	}
	return res.Identity, res.enabled()
}

type jwtClaims struct {
	IAT *int64 `json:"iat"`
	EXP *int64 `json:"exp"`
}

// parseJWT decodes a compact JWS and returns its claims and a function
// that checks its signature with a public key.
func parseJWT(token string) (jwtClaims, func(pub any) bool, error) {
	var c jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, nil, errors.New("not a JWT (three base64url parts)")
	}
	dec := base64.RawURLEncoding
	hb, err := dec.DecodeString(parts[0])
	if err != nil {
		return c, nil, errors.New("header not base64url")
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return c, nil, errors.New("header not JSON")
	}
	pb, err := dec.DecodeString(parts[1])
	if err != nil {
		return c, nil, errors.New("claims not base64url")
	}
	if err := json.Unmarshal(pb, &c); err != nil {
		return c, nil, errors.New("claims not JSON (iat and exp must be numbers)")
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil {
		return c, nil, errors.New("signature not base64url")
	}
	signed := []byte(parts[0] + "." + parts[1])
	var hash crypto.Hash
	switch h.Alg[min(2, len(h.Alg)):] {
	case "256":
		hash = crypto.SHA256
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	default:
		return c, nil, fmt.Errorf("alg %q is not supported (RS256/384/512, ES256/384/512)", h.Alg)
	}
	digest := func() []byte {
		switch hash {
		case crypto.SHA384:
			d := sha512.Sum384(signed)
			return d[:]
		case crypto.SHA512:
			d := sha512.Sum512(signed)
			return d[:]
		}
		d := sha256.Sum256(signed)
		return d[:]
	}()
	switch {
	case strings.HasPrefix(h.Alg, "RS"):
		return c, func(pub any) bool {
			k, ok := pub.(*rsa.PublicKey)
			return ok && rsa.VerifyPKCS1v15(k, hash, digest, sig) == nil
		}, nil
	case strings.HasPrefix(h.Alg, "ES"):
		return c, func(pub any) bool {
			k, ok := pub.(*ecdsa.PublicKey)
			if !ok || len(sig)%2 != 0 {
				return false
			}
			n := len(sig) / 2
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			return ecdsa.Verify(k, digest, r, s)
		}, nil
	}
	return c, nil, fmt.Errorf("alg %q is not supported (RS256/384/512, ES256/384/512)", h.Alg)
}

// JWTClientID splits an MQTT client id of Hono's JWT form
// */<tenant>/*/<auth-id> (e.g. tenants/t1/devices/dev1, or Google IoT
// Core's projects/p/locations/l/registries/<tenant>/devices/<auth-id>).
func JWTClientID(clientID string) (tenant, authID string, ok bool) {
	segs := strings.Split(clientID, "/")
	if len(segs) < 4 || segs[len(segs)-3] == "" || segs[len(segs)-1] == "" {
		return "", "", false
	}
	return segs[len(segs)-3], segs[len(segs)-1], true
}

// LooksLikeJWT reports whether a password is a compact JWS.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ")
}

// JWTIdentity reads who a token says it is, before any check: tenant from
// the tid claim and auth-id from sub (how a device names itself where no
// client id can, as in an HTTP Authorization: Bearer header). The token is
// trusted only once AuthenticateJWT has verified it for that tenant and
// auth-id.
func JWTIdentity(token string) (tenant, authID string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", false
	}
	var c struct {
		TID string `json:"tid"`
		Sub string `json:"sub"`
	}
	if json.Unmarshal(pb, &c) != nil || c.TID == "" || c.Sub == "" {
		return "", "", false
	}
	return c.TID, c.Sub, true
}
